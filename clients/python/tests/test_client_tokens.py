"""herald.read_token: the HS256 JWT of SPEC §9, byte-identical to PyJWT's for the same claims."""

import base64
import hashlib
import hmac
import json

import pytest

from herald import load_secret, read_token

SECRET = b"0123456789abcdef0123456789abcdef-test"
NOW = 1_790_000_000
# jwt.encode({"iat": NOW, "exp": NOW + 600, "sub": "user-42"}, SECRET, algorithm="HS256"), PyJWT 2.15.1
KNOWN = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE3OTAwMDAwMDAsImV4cCI6MTc5MDAwMDYwMCwic3ViIjoidXNlci00MiJ9."
         "nRwMJQe0ufES9XFG3o370nqL2V0zVyMtilaf7oNUnEw")


def parts(token):
    def dec(s):
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    h, p, s = token.split(".")
    return json.loads(dec(h)), json.loads(dec(p)), dec(s)


def test_known_vector():
    token = read_token(SECRET, owner="user-42", ttl=600, now=NOW)
    assert token == KNOWN


def test_claims_and_signature():
    for kwargs, claim in (({"owner": "alice@example.com"}, {"sub": "alice@example.com"}),
                          ({"jobs": ["a" * 26, "b" * 26]}, {"jobs": ["a" * 26, "b" * 26]}),
                          ({"all": True}, {"all": True})):
        token = read_token(SECRET, ttl=60, now=NOW, **kwargs)
        header, payload, sig = parts(token)
        assert header == {"alg": "HS256", "typ": "JWT"}
        assert payload == {"iat": NOW, "exp": NOW + 60, **claim}
        signing_input = token.rsplit(".", 1)[0].encode()
        assert hmac.compare_digest(sig, hmac.new(SECRET, signing_input, hashlib.sha256).digest())
        assert "=" not in token


def test_pyjwt_decodes_it_and_makes_the_same_token():
    jwt = pytest.importorskip("jwt", reason="PyJWT is installed in the example venv that `make test` runs this in")
    token = read_token(SECRET.decode(), owner="user-42", ttl=600)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "user-42" and claims["exp"] - claims["iat"] == 600
    assert jwt.encode({"iat": NOW, "exp": NOW + 600, "sub": "user-42"}, SECRET, algorithm="HS256") == \
        read_token(SECRET, owner="user-42", ttl=600, now=NOW)
    jobs = jwt.decode(read_token(SECRET, jobs=["x" * 26], ttl=5), SECRET, algorithms=["HS256"])
    assert jobs["jobs"] == ["x" * 26]
    expired = read_token(SECRET, all=True, ttl=1, now=NOW)
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(expired, SECRET, algorithms=["HS256"])


@pytest.mark.parametrize("kwargs, words", [
    ({}, "exactly one"),
    ({"owner": "a", "all": True}, "exactly one"),
    ({"owner": "a b"}, "owner"),
    ({"owner": "x" * 129}, "owner"),
    ({"owner": ""}, "owner"),
    ({"jobs": []}, "jobs"),
    ({"jobs": "abc"}, "jobs"),
    ({"jobs": [1]}, "jobs"),
    ({"owner": "a", "ttl": 0}, "ttl"),
    ({"owner": "a", "ttl": -5}, "ttl"),
    ({"owner": "a", "ttl": "1h"}, "ttl"),
])
def test_bad_arguments_are_refused_by_name(kwargs, words):
    with pytest.raises(ValueError, match=words):
        read_token(SECRET, **kwargs)


def test_a_short_secret_is_refused():
    with pytest.raises(ValueError, match="at least 32"):
        read_token(b"short", owner="a")


def test_load_secret_removes_one_trailing_newline(tmp_path):
    f = tmp_path / "secret"
    f.write_bytes(SECRET + b"\n\n")
    assert load_secret(str(f)) == SECRET + b"\n"
    f.write_bytes(SECRET)
    assert load_secret(str(f)) == SECRET
