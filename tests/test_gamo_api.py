"""GaMo's API through the ASGI test client: consent, upload validation, balanced targets,
defused frames stored as a fape dataset, deletion, the customized version."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the gamo extra is not installed: pip install -e '.[gamo]'")
from fastapi.testclient import TestClient  # noqa: E402

from fape.data.format import read_index  # noqa: E402
from fape.gamo.app import create_app  # noqa: E402
from fape.gamo.balance import choose_target, deficit  # noqa: E402
from fape.gamo.game import Game  # noqa: E402
from fape.gamo.uploads import RateLimiter, Refused  # noqa: E402
from _gamo import NAMES, FakeEngine, files_under, frame_bytes, server_config  # noqa: E402
from _fixtures import REPO  # noqa: E402

MODEL = REPO / "checkpoints" / "fanet_fer2013_48"


def make_client(tmp_path, real_engine=False, **game):
    cfg = server_config(tmp_path / "gamo", **game)
    g = Game(cfg, MODEL, engine_factory=None if real_engine else FakeEngine, seed=0)
    return TestClient(create_app(g)), g


def consented(client, store_frames=False) -> dict:
    r = client.post("/api/players", json={"consent": True, "store_frames": store_frames})
    assert r.status_code == 200, r.text
    return r.json()


def play(client, pid, mode="general") -> str:
    r = client.post("/api/sessions", json={"player_id": pid, "mode": mode})
    assert r.status_code == 200, r.text
    return r.json()["session"]


def post_frame(client, sid, data: bytes, ctype="image/jpeg"):
    return client.post(f"/api/sessions/{sid}/frames", content=data, headers={"Content-Type": ctype})


def stored(g: Game) -> list[str]:
    """Every file the game keeps about players (database aside)."""
    return [f for f in files_under(g.root) if f.startswith(("dataset/images", "frames"))]


# ---------------------------------------------------------------- consent
def test_no_consent_stores_nothing(tmp_path):
    client, g = make_client(tmp_path)
    for body in ({"consent": False}, {}, {"consent": "yes"}, [1]):
        r = client.post("/api/players", json=body)
        assert r.status_code == 400 and r.json()["error"] in ("no_consent", "bad_json")
    assert g.repo.stats()["players"] == 0
    r = post_frame(client, "0" * 32, frame_bytes("happy"))  # no session without a player
    assert r.status_code == 404 and r.json()["error"] == "unknown_session"
    assert stored(g) == [] and not (g.root / "dataset" / "manifest.csv").exists()


# ---------------------------------------------------------------- uploads
@pytest.mark.parametrize("data,ctype,status,error", [
    (b"not an image at all", "image/jpeg", 415, "not_an_image"),
    (b"", "image/jpeg", 400, "empty_upload"),
    (b"GIF89a" + b"\0" * 40, "image/gif", 415, "not_an_image"),
    (frame_bytes("happy")[:200], "image/jpeg", 415, "not_an_image"),  # truncated JPEG: the real decode fails
    (frame_bytes(None), "image/jpeg", 422, "no_face"),
    (b"\xff" * 3_000_000, "image/jpeg", 413, "too_large"),
], ids=["text", "empty", "gif", "truncated-jpeg", "no-face", "oversized"])
def test_bad_uploads_get_json_errors_and_store_nothing(tmp_path, data, ctype, status, error):
    client, g = make_client(tmp_path)
    sid = play(client, consented(client)["id"])
    client.post(f"/api/sessions/{sid}/bombs")
    r = post_frame(client, sid, data, ctype)
    assert r.status_code == status and r.json()["error"] == error and r.json()["detail"]
    assert stored(g) == [] and g.repo.stats()["samples"] == 0


def test_no_face_with_the_real_detector(tmp_path):
    client, g = make_client(tmp_path, real_engine=True)
    sid = play(client, consented(client)["id"])
    r = post_frame(client, sid, frame_bytes("happy", size=(320, 240)))  # a flat image: no face
    assert r.status_code == 422 and r.json()["error"] == "no_face"
    assert stored(g) == []


def test_rate_limit_per_session():
    t = [0.0]
    lim = RateLimiter(rate=1.0, burst=2, clock=lambda: t[0])
    lim.take("a"), lim.take("a")
    with pytest.raises(Refused) as e:
        lim.take("a")
    assert e.value.status == 429
    lim.take("b")  # another session is not affected
    t[0] += 1.0
    lim.take("a")


def test_rate_limited_frames_are_refused_in_json(tmp_path):
    cfg = server_config(tmp_path / "gamo")
    cfg.rate_per_second, cfg.rate_burst = 0.001, 1
    client = TestClient(create_app(Game(cfg, MODEL, engine_factory=FakeEngine, seed=0)))
    sid = play(client, consented(client)["id"])
    assert post_frame(client, sid, frame_bytes("happy")).status_code == 200
    r = post_frame(client, sid, frame_bytes("happy"))
    assert r.status_code == 429 and r.json()["error"] == "rate_limited"


def test_send_all_templates_passes_the_frame_rate_limit(tmp_path):
    cfg = server_config(tmp_path / "gamo")
    cfg.rate_per_second, cfg.rate_burst = 2.0, 4  # the serve defaults
    client = TestClient(create_app(Game(cfg, MODEL, engine_factory=FakeEngine, seed=0)))
    pid = consented(client)["id"]
    for n in NAMES:  # "Send all": 7 uploads at once
        r = client.post(f"/api/players/{pid}/templates/{n}", content=frame_bytes(n), headers={"Content-Type": "image/jpeg"})
        assert r.status_code == 200, r.text


# ---------------------------------------------------------------- targets
def test_target_choice_balances():
    rng = np.random.default_rng(0)
    overall = {n: 10 for n in NAMES} | {"fear": 2, "disgust": 3}
    picks = [choose_target(NAMES, overall, {}, rng, explore=0.0) for _ in range(50)]
    assert set(picks) == {"fear"}
    # the player's own counts matter too: this player has everything but sad
    mine = {n: 5 for n in NAMES} | {"sad": 0}
    assert choose_target(NAMES, {n: 10 for n in NAMES}, mine, rng, explore=0.0) == "sad"
    assert deficit(NAMES, {}, {}).tolist() == [0.0] * 7
    # with exploration every class still shows up, the least collected most often
    picks = [choose_target(NAMES, overall, {}, rng, explore=0.5) for _ in range(2000)]
    share = {n: picks.count(n) / len(picks) for n in NAMES}
    assert min(share.values()) > 0.03 and max(share, key=share.get) == "fear"
    # a class already falling is not asked again while others are left
    assert choose_target(NAMES, overall, {}, rng, explore=0.0, avoid=("fear",)) == "disgust"


def test_served_targets_follow_the_collected_counts(tmp_path):
    client, g = make_client(tmp_path, max_bombs=1)
    sid = play(client, consented(client)["id"])
    seen = []
    for _ in range(len(NAMES)):  # defuse each target: the next one is always a class not collected yet
        b = client.post(f"/api/sessions/{sid}/bombs").json()
        seen.append(b["expression"])
        assert post_frame(client, sid, frame_bytes(b["expression"])).json()["defused"]["bomb"] == b["bomb"]
    assert sorted(seen) == sorted(NAMES)


# ---------------------------------------------------------------- storing and deleting
def test_defused_frames_become_a_fape_dataset_and_delete_removes_them(tmp_path):
    client, g = make_client(tmp_path, max_bombs=2, lives=2)
    keep = consented(client)
    gone = consented(client, store_frames=True)
    for p in (keep, gone):
        sid = play(client, p["id"])
        b = client.post(f"/api/sessions/{sid}/bombs").json()
        wrong = next(n for n in NAMES if n != b["expression"])
        r = post_frame(client, sid, frame_bytes(wrong)).json()
        assert r["defused"] is None and r["score"] == 0  # the wrong face defuses nothing
        r = post_frame(client, sid, frame_bytes(b["expression"])).json()
        assert r["defused"]["expression"] == b["expression"] and r["score"] == 1
        assert post_frame(client, sid, frame_bytes(b["expression"])).json()["defused"] is None  # once only
    idx = read_index(g.root / "dataset")
    m = idx.manifest
    assert len(m) == 2 and set(m["source"]) == {"gamo"}
    assert list(idx.info.label_names) == NAMES
    assert (m["expression"] == [NAMES[k] for k in m["label"]]).all()
    assert set(m["subject"]) == {keep["pseudonym"], gone["pseudonym"]}
    assert {"sample", "model_version", "prob", "threshold", "mode"} <= set(m.columns)
    for path in m["path"]:
        assert (g.root / "dataset" / path).is_file()
        assert keep["id"] not in path and gone["id"] not in path  # the secret id never reaches the files
    assert len([f for f in stored(g) if f.startswith("frames/")]) == 1  # only the opted-in player's frame

    r = client.delete(f"/players/{gone['id']}")
    assert r.status_code == 200 and r.json()["samples"] == 1
    assert not any(gone["pseudonym"] in f for f in files_under(g.root))
    m = read_index(g.root / "dataset").manifest
    assert list(m["subject"]) == [keep["pseudonym"]] and (g.root / "dataset" / m["path"].iat[0]).is_file()
    assert client.get(f"/api/players/{gone['id']}").status_code == 404
    assert client.delete(f"/players/{gone['id']}").status_code == 404

    client.delete(f"/players/{keep['id']}")
    assert stored(g) == [] and not (g.root / "dataset" / "manifest.csv").exists()
    assert g.repo.stats() == {"players": 0, "sessions": 0, "samples": 0, "bombs": {}}


@pytest.mark.parametrize("evil", ["../../etc", "..%2F..%2Fx", "a/b", "x" * 300])
def test_paths_never_come_from_client_input(tmp_path, evil):
    client, g = make_client(tmp_path)
    p = consented(client)
    assert client.delete(f"/players/{evil}").status_code in (404, 405)
    assert client.post(f"/api/players/{p['id']}/templates/{evil}", content=frame_bytes("happy"),
                       headers={"Content-Type": "image/jpeg"}).status_code in (400, 404, 405)
    r = client.post("/api/sessions", json={"player_id": evil})
    assert r.status_code == 404
    sid = play(client, p["id"])
    b = client.post(f"/api/sessions/{sid}/bombs").json()
    post_frame(client, sid, frame_bytes(b["expression"]))
    (path,) = read_index(g.root / "dataset").manifest["path"]
    assert path.startswith(f"images/{p['pseudonym']}/") and ".." not in path
    assert all(f.startswith(("dataset/", "models/", "gamo.sqlite")) for f in files_under(g.root))


def test_lives_and_game_over(tmp_path):
    client, g = make_client(tmp_path, lives=2, max_bombs=1)
    sid = play(client, consented(client)["id"])
    for lives in (1, 0):
        b = client.post(f"/api/sessions/{sid}/bombs").json()
        r = client.post(f"/api/sessions/{sid}/bombs/{b['bomb']}/landed").json()
        assert r["lives"] == lives and r["game_over"] == (lives == 0)
    assert post_frame(client, sid, frame_bytes("happy")).json()["error"] == "game_over"
    assert client.post(f"/api/sessions/{sid}/bombs").status_code == 409


# ---------------------------------------------------------------- customized version
def test_customized_version_decides_by_template_distance(tmp_path):
    client, g = make_client(tmp_path, max_bombs=1)
    p = consented(client)
    assert client.post("/api/sessions", json={"player_id": p["id"], "mode": "custom"}).json()["error"] == "templates_missing"
    r = client.post(f"/api/players/{p['id']}/templates/happy", content=frame_bytes(None),
                    headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 422 and r.json()["error"] == "no_face"  # a capture with no face is rejected
    # register each expression with the *next* class's face: the templates, not the classifier, decide
    for i, n in enumerate(NAMES):
        r = client.post(f"/api/players/{p['id']}/templates/{n}", content=frame_bytes(NAMES[(i + 1) % 7]),
                        headers={"Content-Type": "image/jpeg"})
        assert r.status_code == 200, r.text
    sid = play(client, p["id"], "custom")
    b = client.post(f"/api/sessions/{sid}/bombs").json()
    i = NAMES.index(b["expression"])
    r = post_frame(client, sid, frame_bytes(b["expression"])).json()
    assert r["defused"] is None and min(r["distances"], key=r["distances"].get) == NAMES[(i - 1) % 7]
    r = post_frame(client, sid, frame_bytes(NAMES[(i + 1) % 7])).json()
    assert r["defused"]["expression"] == b["expression"] and r["distances"][b["expression"]] == 0.0
    (mode,) = read_index(g.root / "dataset").manifest["mode"]
    assert mode == "custom"


def test_pages_and_admin(tmp_path):
    client, g = make_client(tmp_path)
    for page in ("/", "/play", "/register", "/admin", "/static/game.js"):
        assert client.get(page).status_code == 200
    a = client.get("/api/admin").json()
    assert a["model"]["current"] == "v0000" and set(a["classes"]) == set(NAMES)
    cfg = client.get("/api/config").json()
    assert cfg["game"]["thresholds"]["happy"] == g.cfg.game.threshold("happy")
