"""The ASGI app (FastAPI on Starlette): pages from ``static/`` and a small JSON API. Routes only
parse, validate and translate; the rules live in ``game.Game``. Every refusal is JSON
``{"error": CODE, "detail": SENTENCE}`` with a 4xx status, and stores nothing."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from fape.gamo.game import Game
from fape.gamo.uploads import RateLimiter, Refused, decode_image

STATIC = Path(__file__).parent / "static"
PAGES = {"/": "index.html", "/play": "play.html", "/register": "register.html", "/admin": "admin.html"}


async def read_body(request: Request, limit: int) -> bytes:
    """The raw request body, refused as soon as it passes ``limit`` bytes (never buffered whole)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise Refused(413, "too_large", f"the upload is {declared} bytes; the limit is {limit}")
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise Refused(413, "too_large", f"the upload is over the limit of {limit} bytes")
    return bytes(buf)


async def json_body(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        raise Refused(400, "bad_json", "the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise Refused(400, "bad_json", "the request body must be a JSON object")
    return body


def create_app(game: Game) -> FastAPI:
    cfg = game.cfg
    app = FastAPI(title="GaMo", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.game = game
    limiter = RateLimiter(cfg.rate_per_second, cfg.rate_burst)
    # "Send all" posts the 7 templates at once; recaptures follow one by one
    template_limiter = RateLimiter(1.0, 2 * len(game.names))

    @app.exception_handler(Refused)
    async def refused(_request, e: Refused):
        return JSONResponse({"error": e.error, "detail": e.detail}, status_code=e.status)

    async def image_of(request: Request, key: str, limit: RateLimiter = limiter):
        limit.take(key)  # before reading: a flood costs no decoding
        data = await read_body(request, cfg.max_upload_bytes)
        return await run_in_threadpool(decode_image, data, cfg.max_upload_bytes, cfg.max_pixels)

    for route, name in PAGES.items():
        app.add_api_route(route, (lambda n: lambda: FileResponse(STATIC / n))(name), include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/config")
    def config():
        g = cfg.game.public()
        g["thresholds"] = {n: cfg.game.threshold(n) for n in game.names}
        return {"game": g, "labels": game.names, "model_version": game.engine().version}

    @app.post("/api/players")
    async def new_player(request: Request):
        body = await json_body(request)
        p = game.new_player(body.get("consent"), bool(body.get("store_frames", False)))
        return {"id": p["id"], "pseudonym": p["pseudonym"], "store_frames": bool(p["store_frames"])}

    @app.get("/api/players/{pid}")
    def player(pid: str):
        p = game.player(pid)
        return {"pseudonym": p["pseudonym"], "store_frames": bool(p["store_frames"]),
                "templates": sorted(game.repo.templates(p["id"])), "counts": game.repo.counts(p["id"])}

    @app.delete("/players/{pid}")
    def delete_player(pid: str):
        return game.delete_player(pid)

    @app.post("/api/players/{pid}/templates/{expression}")
    async def template(pid: str, expression: str, request: Request):
        game.player(pid)
        frame = await image_of(request, f"player:{pid}", template_limiter)
        return await run_in_threadpool(game.add_template, pid, expression, frame)

    @app.post("/api/sessions")
    async def new_session(request: Request):
        body = await json_body(request)
        s = game.new_session(str(body.get("player_id", "")), str(body.get("mode", "general")))
        return {"session": s["id"], "lives": s["lives"], "score": s["score"], "mode": s["mode"],
                "model_version": s["model_version"]}

    @app.post("/api/sessions/{sid}/bombs")
    def new_bomb(sid: str):
        return game.new_bomb(sid)

    @app.post("/api/sessions/{sid}/bombs/{bomb_id}/landed")
    def landed(sid: str, bomb_id: int):
        return game.landed(sid, bomb_id)

    @app.post("/api/sessions/{sid}/frames")
    async def frame(sid: str, request: Request):
        game.session(sid)
        image = await image_of(request, f"session:{sid}")
        return await run_in_threadpool(game.frame, sid, image)

    @app.get("/api/admin")
    def admin():
        return game.admin()

    return app
