"""The real service under uvicorn, over HTTP: launch, tokens, sessions, exactly-once
segments, events and anchors, probe and checks, and errors a person can read."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lockdown.capture.base import Stream
from lockdown.config import examfile
from lockdown.config.settings import Organisation, layer
from lockdown.session import tokens
from lockdown.session.tokens import TokenType
from tests.support.service import Api, ServiceProcess, StoredSegment, launch_token, spool_segments
from tests.unit.upload.factory import segment


@pytest.fixture
def api(lockdown_service: ServiceProcess) -> Iterator[Api]:
    client = Api(lockdown_service.url)
    yield client
    client.close()


def _exam(service: ServiceProcess) -> str:
    exam_id = f"exam-{uuid.uuid4().hex[:8]}"
    service.create_exam(exam_id)
    return exam_id


def _organisation(service: ServiceProcess) -> Organisation:
    public = (service.data / "keys" / "token.pub").read_text().strip()
    return Organisation(values={"config.trusted_keys": (public,)})


def _session(service: ServiceProcess, api: Api, **kwargs: object) -> tuple[str, str, str]:
    """A new candidate's session: (session token, session id, upload token)."""
    exam_id = _exam(service)
    link = service.add_candidate(exam_id, f"u-{uuid.uuid4().hex[:6]}")
    token = api.session_token(launch_token(link))
    sid = str(uuid.uuid4())
    reply = api.create_session(token, sid, **kwargs)  # type: ignore[arg-type]
    assert reply.status_code == 201, reply.text
    return token, sid, reply.json()["upload_token"]


def _segments(service: ServiceProcess, tmp_path: Path, count: int = 3) -> list[StoredSegment]:
    recipient = (service.data / "keys" / "recipient.pub").read_text().strip()
    _, stored = spool_segments(
        tmp_path / "spool", recipient, [segment(Stream.CAMERA, n, 5000) for n in range(count)]
    )
    return stored


def test_healthz_answers_with_a_date(lockdown_service: ServiceProcess) -> None:
    reply = requests.get(lockdown_service.url + "/healthz", timeout=10)
    assert reply.status_code == 200 and reply.json()["status"] == "ok"
    assert abs(time.time() - _http_date(reply.headers["Date"])) < 5


def _http_date(text: str) -> float:
    from email.utils import parsedate_to_datetime

    return parsedate_to_datetime(text).timestamp()


def test_the_exam_configuration_loads_through_the_clients_own_loader(
    lockdown_service: ServiceProcess,
) -> None:
    exam_id = f"exam-{uuid.uuid4().hex[:8]}"
    config = examfile.load_bytes(
        lockdown_service.create_exam(exam_id, streams="camera,screen"),
        _organisation(lockdown_service),
        origin="exam",
    )
    settings = layer(_organisation(lockdown_service), config.values)
    assert config.meta.id == exam_id and config.signed_by is not None
    assert settings["service.url"] == lockdown_service.url + "/"
    assert settings["service.token_key"] == config.signed_by
    assert settings["service.recipient_key"].startswith("x25519:")
    assert settings["proctoring.camera"] and settings["proctoring.screen"]
    assert not settings["proctoring.microphone"]
    probe = tokens.unverified(settings["service.probe_token"])
    assert probe.typ is TokenType.PROBE and probe.claim("exam") == exam_id


def test_a_launch_link_downloads_the_candidates_signed_configuration(
    lockdown_service: ServiceProcess, api: Api
) -> None:
    from lockdown import launch

    exam_id = _exam(lockdown_service)
    link = lockdown_service.add_candidate(exam_id, "u-link", name="Grace H")
    assert link.startswith(f"lockdown://127.0.0.1:{lockdown_service.port}/launch?token=")
    org = _organisation(lockdown_service)
    target = launch.resolve(link, org)
    config = examfile.load_bytes(launch.fetch(target.location, org), org, origin=link)
    assert config.values["service.launch_token"] == launch_token(link)
    reply = api.exchange(config.values["service.launch_token"])
    assert reply.status_code == 200
    body = reply.json()
    assert body["exam"]["id"] == exam_id
    assert body["candidate"] == {"id": "u-link", "group": "A", "name": "Grace H"}
    forged = requests.get(lockdown_service.url + "/launch?token=abc.def", timeout=10)
    assert forged.status_code == 401 and forged.json()["error"] == "unauthorized"


def test_forged_expired_and_wrong_type_tokens_get_401(
    lockdown_service: ServiceProcess, api: Api
) -> None:
    exam_id = _exam(lockdown_service)
    lockdown_service.add_candidate(exam_id, "u-bad")
    claims = {"sub": "u-bad", "grp": "A", "name": "X", "exam": exam_id}
    key = lockdown_service.token_key()
    good = tokens.issue(key, TokenType.LAUNCH, claims, lifetime_s=60)
    assert api.exchange(good).status_code == 200  # positive control: the service's own key
    forged = tokens.issue(Ed25519PrivateKey.generate(), TokenType.LAUNCH, claims, lifetime_s=60)
    expired = tokens.issue(key, TokenType.LAUNCH, claims, lifetime_s=60, now=time.time() - 3600)
    probe = tokens.issue(key, TokenType.PROBE, {"exam": exam_id}, lifetime_s=60)
    for bad in (forged, expired, probe, "garbage"):
        reply = api.exchange(bad)
        assert reply.status_code == 401, reply.text
        assert reply.json()["error"] == "unauthorized" and reply.json()["message"]
    no_token = requests.post(lockdown_service.api + "/sessions", json={}, timeout=10)
    assert no_token.status_code == 401


def test_a_session_is_idempotent_and_a_second_live_one_is_refused(
    lockdown_service: ServiceProcess, api: Api
) -> None:
    exam_id = _exam(lockdown_service)
    token = api.session_token(launch_token(lockdown_service.add_candidate(exam_id, "u-twice")))
    sid = str(uuid.uuid4())
    first = api.create_session(token, sid)
    again = api.create_session(token, sid)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["session_id"] == sid and again.json()["flags"] == []
    upload = tokens.unverified(again.json()["upload_token"])
    assert upload.typ is TokenType.UPLOAD and upload.claim("sid") == sid
    second = api.create_session(token, str(uuid.uuid4()))
    assert second.status_code == 409 and second.json()["error"] == "session_active"
    assert api.close_session(token, sid, {}).status_code == 200
    assert api.create_session(token, str(uuid.uuid4())).status_code == 201


def test_a_restarted_client_resumes_its_session_with_the_earlier_upload_token(
    lockdown_service: ServiceProcess, api: Api
) -> None:
    exam_id = _exam(lockdown_service)
    token = api.session_token(launch_token(lockdown_service.add_candidate(exam_id, "u-resume")))
    other_exam = _exam(lockdown_service)
    stranger = api.session_token(launch_token(lockdown_service.add_candidate(other_exam, "u-x")))
    earlier = str(uuid.uuid4())
    upload = api.create_session(token, earlier).json()["upload_token"]
    _, _, other_upload = _session(lockdown_service, api)
    forged = tokens.issue(
        Ed25519PrivateKey.generate(),
        TokenType.UPLOAD,
        {"sid": earlier, "exam": exam_id},
        lifetime_s=600,
    )
    # no proof, or a proof that does not hold: the earlier session is alive, so 409
    for proof in (
        None,
        {"resumes": earlier, "resume_token": forged},
        {"resumes": earlier, "resume_token": other_upload},  # another session's token
        {"resumes": str(uuid.uuid4()), "resume_token": upload},  # names another session
    ):
        refused = api.create_session(token, str(uuid.uuid4()), resume=proof)
        assert refused.status_code == 409, (proof, refused.text)
        assert refused.json()["error"] == "session_active"
    # another candidate holding the token cannot hang their session on this one
    foreign = api.create_session(
        stranger, str(uuid.uuid4()), resume={"resumes": earlier, "resume_token": upload}
    )
    assert foreign.status_code == 201 and foreign.json()["resumed_from"] is None
    # the earlier session's upload token: accepted, linked, no integrity flag
    resumed = str(uuid.uuid4())
    proof = {"resumes": earlier, "resume_token": upload}
    first = api.create_session(token, resumed, resume=proof)
    again = api.create_session(token, resumed, resume=proof)
    assert (first.status_code, again.status_code) == (201, 200), first.text
    assert first.json()["resumed_from"] == earlier == again.json()["resumed_from"]
    assert first.json()["flags"] == []
    # the earlier session (superseded) still takes its spool's drain under its own token
    assert api.manifest(upload, earlier).status_code == 200
    assert api.close_session(upload, earlier, {}).status_code == 200
    # the resumed session is the live one now: a second launch without proof is refused
    assert api.create_session(token, str(uuid.uuid4())).status_code == 409


def test_a_development_build_session_is_flagged(lockdown_service: ServiceProcess, api: Api) -> None:
    token, sid, _ = _session(lockdown_service, api, build="development")
    assert api.create_session(token, sid, build="development").json()["flags"] == [
        "development_build"
    ]


def test_another_candidates_token_cannot_touch_a_session(
    lockdown_service: ServiceProcess, api: Api, tmp_path: Path
) -> None:
    _, sid, _ = _session(lockdown_service, api)
    other, other_sid, other_upload = _session(lockdown_service, api)
    (seg,) = _segments(lockdown_service, tmp_path, 1)
    assert api.put(other, sid, seg).status_code == 403
    assert api.put(other_upload, sid, seg).status_code == 403
    assert api.manifest(other_upload, sid).status_code == 403
    assert api.put(other_upload, other_sid, seg).status_code == 201  # control


def test_a_segment_is_stored_exactly_once(
    lockdown_service: ServiceProcess, api: Api, tmp_path: Path
) -> None:
    token, sid, upload = _session(lockdown_service, api)
    first, second, third = _segments(lockdown_service, tmp_path)
    assert api.head(upload, sid, "camera", 0).status_code == 404
    stored = api.put(upload, sid, first)
    assert stored.status_code == 201
    assert stored.json() == {"stream": "camera", "seq": 0, "digest": first.digest}
    retry = api.put(token, sid, first)  # the reply was lost: the client sends it again
    assert retry.status_code == 200 and retry.json()["digest"] == first.digest
    head = api.head(upload, sid, "camera", 0)
    assert head.status_code == 200 and head.headers["Content-Digest"] == first.digest
    assert api.put(upload, sid, second).status_code == 201
    manifest = api.manifest(upload, sid).json()
    assert manifest["streams"] == {"camera": {"seqs": {"0": first.digest, "1": second.digest}}}
    assert manifest["closed"] is False
    assert third.seq == 2


def test_a_different_body_for_a_stored_key_is_a_conflict_and_flagged(
    lockdown_service: ServiceProcess, api: Api, tmp_path: Path
) -> None:
    token, sid, upload = _session(lockdown_service, api)
    first, second, _ = _segments(lockdown_service, tmp_path)
    assert api.put(upload, sid, first).status_code == 201
    replay = StoredSegment("camera", 0, second.body, second.meta)
    reply = api.put(upload, sid, replay)
    assert reply.status_code == 409
    assert reply.json()["error"] == "digest_conflict" and reply.json()["digest"] == first.digest
    assert api.manifest(upload, sid).json()["streams"]["camera"]["seqs"] == {"0": first.digest}
    assert "integrity" in api.create_session(token, sid).json()["flags"]


def test_a_body_that_does_not_match_its_digest_is_not_stored(
    lockdown_service: ServiceProcess, api: Api, tmp_path: Path
) -> None:
    _, sid, upload = _session(lockdown_service, api)
    first, second, _ = _segments(lockdown_service, tmp_path)
    reply = api.put(upload, sid, first, digest=second.digest)
    assert reply.status_code == 400 and reply.json()["error"] == "digest_mismatch"
    assert api.head(upload, sid, "camera", 0).status_code == 404
    bad = api.put(upload, sid, first, digest="md5=abc")
    assert bad.status_code == 400 and bad.json()["error"] == "bad_digest_header"
    assert api.put(upload, sid, first).status_code == 201  # control: the true digest


def test_events_are_deduplicated_and_heads_anchored(
    lockdown_service: ServiceProcess, api: Api
) -> None:
    _, sid, upload = _session(lockdown_service, api)
    heads = {"journal": {"hash": "a" * 64, "mac": "b" * 64, "records": 2}}
    batch = [{"id": "j:0", "record": {"seq": 0}}, {"id": "j:1", "record": {"seq": 1}}]
    assert api.events(upload, sid, batch, heads).json() == {"accepted": 2, "duplicates": 0}
    batch.append({"id": "j:2", "record": {"seq": 2}})
    heads["journal"] = {"hash": "c" * 64, "mac": "d" * 64, "records": 3}
    assert api.events(upload, sid, batch, heads).json() == {"accepted": 1, "duplicates": 2}
    anchored = api.manifest(upload, sid).json()["heads"]["journal"]
    assert (anchored["hash"], anchored["records"]) == ("c" * 64, 3)
    bad = api.events(upload, sid, [], {"journal": {"hash": "not hex"}})
    assert bad.status_code == 400 and bad.json()["error"] == "bad_request"


def test_the_probe_is_capped_rate_limited_and_needs_the_probe_token(
    lockdown_service: ServiceProcess,
) -> None:
    exam_id = _exam(lockdown_service)
    probe = tokens.issue(
        lockdown_service.token_key(), TokenType.PROBE, {"exam": exam_id}, lifetime_s=60
    )
    auth = {"Authorization": f"Bearer {probe}"}
    url = lockdown_service.api + "/probe"
    reply = requests.post(url, data=b"x" * 200_000, headers=auth, timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.json()["bytes"] == 200_000 and reply.json()["rate_bps"] > 0
    too_big = requests.post(url, data=b"x" * (4 * 1024 * 1024 + 1), headers=auth, timeout=20)
    assert too_big.status_code == 413
    codes = [requests.post(url, data=b"x", headers=auth, timeout=10).status_code for _ in range(6)]
    assert codes[:5] == [200] * 5 and codes[5] == 429
    limited = requests.post(url, data=b"x", headers=auth, timeout=10)
    assert int(limited.headers["Retry-After"]) > 0
    assert not list((lockdown_service.data / "objects" / "probes").rglob("*.*"))
    session_like = requests.post(url, data=b"x", timeout=10)
    assert session_like.status_code == 401


def test_a_check_report_is_stored_once(lockdown_service: ServiceProcess, api: Api) -> None:
    token, sid, _ = _session(lockdown_service, api)
    check = {"check_id": str(uuid.uuid4()), "session_id": sid, "report": {"ok": True}}
    auth = {"Authorization": f"Bearer {token}"}
    url = lockdown_service.api + "/checks"
    assert requests.post(url, json=check, headers=auth, timeout=10).status_code == 201
    assert requests.post(url, json=check, headers=auth, timeout=10).status_code == 200
    with requests.Session() as http:
        codes = [
            http.post(url, json={**check, "check_id": str(uuid.uuid4())}, headers=auth).status_code
            for _ in range(29)
        ]
    assert codes == [201] * 28 + [429]  # 30 a minute per exam and address


def test_the_served_openapi_document_is_the_published_one(
    lockdown_service: ServiceProcess,
) -> None:
    published = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"
    served = requests.get(lockdown_service.url + "/openapi.json", timeout=10).json()
    assert served == json.loads(published.read_text())


def test_a_session_token_is_renewed_with_a_current_one(
    lockdown_service: ServiceProcess, api: Api
) -> None:
    exam_id = _exam(lockdown_service)
    token = api.session_token(launch_token(lockdown_service.add_candidate(exam_id, "u-renew")))
    reply = requests.post(
        lockdown_service.api + "/token", json={"session_token": token}, timeout=10
    )
    assert reply.status_code == 200
    renewed = tokens.unverified(reply.json()["session_token"])
    assert renewed.claim("sub") == "u-renew" and renewed.claim("launch")
    both = requests.post(
        lockdown_service.api + "/token",
        json={"session_token": token, "launch_token": token},
        timeout=10,
    )
    assert both.status_code == 400


def test_concurrent_puts_of_one_segment_store_it_once(
    lockdown_service: ServiceProcess, api: Api, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    _, sid, upload = _session(lockdown_service, api)
    (seg,) = _segments(lockdown_service, tmp_path, 1)

    def put(_: int) -> int:
        client = Api(lockdown_service.url)
        try:
            reply = client.put(upload, sid, seg)
            assert reply.json()["digest"] == seg.digest
            return reply.status_code
        finally:
            client.close()

    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(put, range(8)))
    assert codes == [200] * 7 + [201]
    assert api.manifest(upload, sid).json()["streams"]["camera"]["seqs"] == {"0": seg.digest}


def test_a_body_above_the_cap_is_refused_before_it_is_read(
    lockdown_service: ServiceProcess, api: Api
) -> None:
    _, sid, upload = _session(lockdown_service, api)
    reply = requests.post(
        f"{lockdown_service.api}/sessions/{sid}/events",
        data=b"{" + b" " * (9 * 1024 * 1024) + b"}",
        headers={"Authorization": f"Bearer {upload}", "Content-Type": "application/json"},
        timeout=20,
    )
    assert reply.status_code == 413 and reply.json()["error"] == "too_large"
