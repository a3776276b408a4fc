"""Tiny client of the test server's HTTP API for scripts/peer-check.sh.

Usage: peer_api.py URL ENDPOINT [JSON_BODY]  -> prints the reply's `data` as JSON;
exits 1 (with the server's message on stderr) when result_code is not 200.
Credentials come from CLEARML_API_ACCESS_KEY / CLEARML_API_SECRET_KEY.
"""
import base64
import json
import os
import sys
import urllib.error
import urllib.request


def call(url, endpoint, body):
    key = os.environ.get("CLEARML_API_ACCESS_KEY", "test-access-key")
    secret = os.environ.get("CLEARML_API_SECRET_KEY", "test-secret-key")
    basic = base64.b64encode(f"{key}:{secret}".encode()).decode()
    req = urllib.request.Request(
        f"{url}/{endpoint}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            reply = json.load(resp)
    except urllib.error.HTTPError as err:
        reply = json.load(err)
    meta = reply.get("meta", {})
    if meta.get("result_code") != 200:
        sys.stderr.write(f"{endpoint}: {meta.get('result_code')}/{meta.get('result_subcode')} "
                         f"{meta.get('result_msg')}\n")
        sys.exit(1)
    return reply["data"]


def main():
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        sys.exit(2)
    body = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    print(json.dumps(call(sys.argv[1], sys.argv[2], body)))


if __name__ == "__main__":
    main()
