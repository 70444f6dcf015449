"""The HTTP listeners (admin and schema registry) over TLS with basic and
bearer authentication; health checks stay open."""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from security_util import start_secure_broker

USER, PASSWORD = "alice", "alice-secret"


@pytest.fixture
def https(broker_factory, tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "alg": "RS256"})
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    sb = start_secure_broker(broker_factory, tmp_path, users={USER: PASSWORD},
                             protocols=("PLAINTEXT",),
                             sets={"http.ssl.enabled": "true",
                                   "http.authentication": "basic,bearer",
                                   "sasl.oauthbearer.jwks.endpoint.url": f"file://{jwks}"})
    ctx = ssl.create_default_context(cafile=str(sb.certs.ca))
    return sb, key, ctx


def get(url, ctx, auth=None):
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_admin_and_registry_require_credentials_over_tls(https):
    sb, key, ctx = https
    b = sb.broker
    admin = f"https://127.0.0.1:{b.admin_port}"
    registry = f"https://127.0.0.1:{b.registry_port}"
    assert get(f"{admin}/health/live", ctx)[0] == 200
    status, body, headers = get(f"{admin}/metrics", ctx)
    assert status == 401 and "Basic" in headers.get("www-authenticate", headers.get("WWW-Authenticate", ""))
    assert get(f"{admin}/metrics", ctx, basic(USER, PASSWORD))[0] == 200
    assert get(f"{admin}/metrics", ctx, basic(USER, "wrong"))[0] == 401
    assert get(f"{admin}/metrics", ctx, basic("mallory", PASSWORD))[0] == 401
    now = int(time.time())
    token = jwt.encode({"sub": "svc", "exp": now + 60, "iat": now}, key, algorithm="RS256",
                       headers={"kid": "k1"})
    assert get(f"{registry}/subjects", ctx, f"Bearer {token}")[0] == 200
    expired = jwt.encode({"sub": "svc", "exp": now - 120}, key, algorithm="RS256",
                         headers={"kid": "k1"})
    assert get(f"{registry}/subjects", ctx, f"Bearer {expired}")[0] == 401
    assert get(f"{registry}/subjects", ctx)[0] == 401
    assert get(f"{registry}/subjects", ctx, basic(USER, PASSWORD))[0] == 200
    # Plain HTTP to the TLS port gets no answer, and the listener goes on.
    with pytest.raises(Exception):
        urllib.request.urlopen(f"http://127.0.0.1:{b.admin_port}/health/live", timeout=5)
    assert get(f"{admin}/health/ready", ctx)[0] == 200
    assert '"operation":"HTTP","outcome":"failure"' in b.log_text()
