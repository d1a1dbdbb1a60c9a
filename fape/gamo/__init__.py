"""GaMo: the browser expression game that collects balanced, labelled faces, and the recursive
retraining loop around it (CIFE/GaMo paper, sections 5-6).

- ``config``: game and server settings (thresholds, lives, speed, upload limits).
- ``db``: the SQLite repository (players, sessions, bombs, samples, templates).
- ``balance``: the next target expression, chosen to balance the collected set.
- ``engine``: face detection, classification and CNN features of one uploaded frame.
- ``store``: the collected crops as a fape dataset folder (feeds ``fape clf train``).
- ``uploads``: upload validation and the per-session rate limit.
- ``versions``: the model registry (every version with its card, the served one).
- ``retrain``: ``fape gamo retrain`` (fine-tune, evaluate on the fixed held-out part, promote).
- ``game``: the rules (consent, sessions, bombs, verification, storing, deletion) apart from HTTP.
- ``app``: the ASGI app (Starlette via FastAPI) and its routes; ``static/`` the pages.
- ``fakecam``, ``browser``: a Y4M fake-camera clip from face images, and a headless player
  (system Chromium through Selenium) for the end-to-end test and ``tools/gamo_demo.py``.
"""
