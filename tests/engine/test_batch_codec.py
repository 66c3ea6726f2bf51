"""$batch request building and response parsing (nested change-set responses, CRLF and LF)."""

from __future__ import annotations

from crmmigrator_gui.engine.target.batch import BatchOp, build_batch, parse_batch_response


def test_build_batch_uses_crlf_and_one_part_per_op():
    body, boundary = build_batch(
        [
            BatchOp("POST", "/api/data/v9.2/accounts", {"name": "A"}),
            BatchOp("DELETE", "/api/data/v9.2/accounts(1)"),
        ]
    )
    assert body.count(f"--{boundary}\r\n") == 2
    assert body.endswith(f"--{boundary}--\r\n")
    assert "POST /api/data/v9.2/accounts HTTP/1.1\r\n" in body
    assert "\n" not in body.replace("\r\n", "")


def test_parse_nested_changeset_and_plain_parts():
    gid = "5a1f0000-0000-0000-0000-0000000000c3"
    body = (
        "--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n"
        "--changesetresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
        "Content-ID: 1\r\n\r\nHTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\n"
        f"OData-EntityId: https://org/api/data/v9.2/accounts({gid})\r\n\r\n\r\n"
        "--changesetresponse_2--\r\n"
        "--batchresponse_1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n"
        '{"error":{"code":"0x80044331","message":"too long"}}\r\n'
        "--batchresponse_1--\r\n"
    )
    results = parse_batch_response("multipart/mixed; boundary=batchresponse_1", body)
    assert [r.status for r in results] == [204, 400]
    assert results[0].ok
    assert results[0].entity_id == gid
    assert results[1].error == ("0x80044331", "too long")
    lf = parse_batch_response("multipart/mixed; boundary=batchresponse_1", body.replace("\r\n", "\n"))
    assert [r.status for r in lf] == [204, 400]
