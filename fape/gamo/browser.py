"""A headless player for tests and demos: starts ``fape gamo serve`` on a free localhost port and
drives the system's Chromium (Selenium + chromedriver from the OS packages, never downloaded)
with a fake camera clip from ``fakecam``."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def find_browser() -> tuple[str | None, str | None]:
    """(browser, chromedriver) paths on PATH, or None each."""
    browser = next((p for p in map(shutil.which, CHROMIUM) if p), None)
    return browser, shutil.which("chromedriver")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data: Path, port: int, *args: str, log: Path | None = None) -> subprocess.Popen:
    """``fape gamo serve`` in a child process (same interpreter and PYTHONPATH); waits until it answers."""
    out = open(log, "wb") if log else subprocess.DEVNULL
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "fape", "gamo", "serve", "--data", str(data), "--port", str(port),
                             *args], stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"fape gamo serve exited with {proc.returncode}" + (f"; see {log}" if log else ""))
        try:
            get_json(f"http://127.0.0.1:{port}/api/config")
            return proc
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError("fape gamo serve did not answer within 60 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def chrome(clip: Path, size=(1000, 820)):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = find_browser()
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--mute-audio",
              "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
              f"--use-file-for-fake-video-capture={clip}", f"--window-size={size[0]},{size[1]}",
              "--autoplay-policy=no-user-gesture-required"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


def wait_for(driver, script: str, timeout: float, what: str):
    """Poll ``return (script)`` in the page until truthy; the value, or TimeoutError naming ``what``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = driver.execute_script(f"return ({script});")
        if v:
            return v
        time.sleep(0.25)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def consent(driver, base: str, store_frames: bool = False) -> str:
    """Agree on the consent page; returns the player's pseudonym."""
    driver.get(base + "/")
    driver.find_element("id", "consent").click()
    if store_frames:
        driver.find_element("id", "store-frames").click()
    driver.find_element("id", "agree").click()
    return wait_for(driver, "location.pathname === '/play' && localStorage.getItem('gamo.pseudonym')", 20,
                    "the play page after consent")


GAME_OVER = "document.body.dataset.gameOver === '1'"


def play_until_over(driver, timeout: float = 120.0, mode: str | None = None, shot: tuple | None = None,
                    until: str = GAME_OVER) -> dict:
    """Start a game on the play page and wait for game over (or the page script ``until``); the
    page's state then. ``shot=(seconds, path)``: a screenshot that long into the game."""
    if mode:
        driver.get(driver.execute_script("return location.origin") + f"/play?mode={mode}")
    wait_for(driver, "window.gamo && window.gamo.cfg && document.getElementById('camera').videoWidth > 0", 30,
             "the camera on the play page")
    start = {"score": driver.find_element("id", "score").text, "lives": driver.find_element("id", "lives").text}
    driver.find_element("id", "start").click()
    if shot:
        time.sleep(shot[0])
        driver.save_screenshot(str(shot[1]))
    wait_for(driver, until, timeout, "game over" if until == GAME_OVER else until)
    state = driver.execute_script("return {score: gamo.score, lives: gamo.lives, frames: gamo.frames, "
                                  "defused: gamo.defused, session: gamo.session};")
    state["shown"] = {"score": driver.find_element("id", "score").text, "lives": driver.find_element("id", "lives").text}
    state["shown_at_start"] = start
    return state


def register_templates(driver, base: str, pause: float = 1.0, synced: bool = False) -> str:
    """Capture the 7 templates one ``pause`` apart (the clip changes face meanwhile) and send them.
    ``synced``: a clip of the 7 faces in the tiles' order, ``pause`` s each: capture tile k while
    the camera shows face k (the fake camera's clip starts with the stream)."""
    driver.get(base + "/register")
    wait_for(driver, "document.querySelectorAll('.tile[data-expression]').length === 7 && "
                     "document.getElementById('camera').videoWidth > 0", 30, "the registration page")
    for k, tile in enumerate(driver.find_elements("css selector", ".tile[data-expression]")):
        if synced:
            at = f"(document.getElementById('camera').currentTime / {pause})"  # clip position in faces
            wait_for(driver, f"Math.floor({at}) % 7 === {k} && {at} % 1 > 0.3 && {at} % 1 < 0.7",
                     30, f"face {k} of the clip")
        tile.click()
        if not synced:
            time.sleep(pause)
    driver.find_element("id", "send").click()
    return wait_for(driver, "/of 7 templates/.test(document.getElementById('msg').textContent) && "
                            "document.getElementById('msg').textContent", 60, "the templates to be sent")
