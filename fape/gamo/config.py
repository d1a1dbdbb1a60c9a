"""Game and server settings. Thresholds are per expression (the paper's "verification" version:
a bomb is defused when the probability of *its* expression passes its own threshold)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

# Defaults for the shipped FER2013 model: expressions it recognises well need a higher
# probability, the ones it rarely gives high probability (disgust, angry, fear) a lower one.
DEFAULT_THRESHOLDS = {"angry": 0.3, "disgust": 0.25, "fear": 0.3, "happy": 0.6, "sad": 0.4,
                      "surprise": 0.5, "neutral": 0.6}


@dataclass
class GameConfig:
    lives: int = 5
    fall_seconds: float = 8.0  # time a bomb takes from the top to the ground
    bomb_every_seconds: float = 3.0  # a new bomb starts this long after the previous one
    max_bombs: int = 2  # bombs falling at the same time
    frame_interval_ms: int = 1000  # the page sends about one frame a second (paper section 5.2)
    thresholds: dict = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    explore: float = 0.2  # probability of a uniformly random target instead of the least collected
    template_margin: float = 0.0  # customized version: nearest template must beat the next by this (L2)

    def threshold(self, expression: str) -> float:
        return float(self.thresholds.get(expression, 0.5))

    def public(self) -> dict:
        return asdict(self)


@dataclass
class ServerConfig:
    data: str = "gamo"  # state folder: gamo.sqlite, dataset/, frames/, models/
    model: str = ""  # initial model (run or checkpoint folder); "" = the shipped one
    max_upload_bytes: int = 2_000_000
    max_pixels: int = 4096 * 4096  # larger images are refused before decoding the pixels
    rate_per_second: float = 2.0  # frames a session may send per second, on average
    rate_burst: int = 4  # ... and in a burst
    crop_size: int = 96  # stored face crops, pixels (RGB)
    detector: str = "haar"
    min_face: int = 48
    game: GameConfig = field(default_factory=GameConfig)
