"""The heat colours and short numbers shared by the terminal views and the image files."""

from __future__ import annotations

# Dark blue (0) through red to yellow (1).
_STOPS = ((0.0, (20, 24, 48)), (0.5, (170, 40, 60)), (1.0, (250, 220, 80)))


def _spread(weight: float) -> float:
    return max(0.0, min(1.0, weight)) ** 0.5  # spread the small weights, where most heads live


def heat_rgb(weight: float) -> tuple[int, int, int]:
    """The heat colour of `weight` ∈ [0, 1], as 0–255 RGB."""
    w = _spread(weight)
    for (x0, c0), (x1, c1) in zip(_STOPS, _STOPS[1:]):
        if w <= x1:
            t = (w - x0) / (x1 - x0)
            return tuple(int(a + (b - a) * t) for a, b in zip(c0, c1))  # type: ignore[return-value]
    return _STOPS[-1][1]


def text_is_dark(weight: float) -> bool:
    """Black text on the bright end of the map, white elsewhere, so numbers stay readable."""
    return _spread(weight) > 0.75


def weight_text(weight: float) -> str:
    """0.63 -> '.63', 1.0 -> '1.0': three characters, so 12+ heads fit 80 columns."""
    return "1.0" if weight >= 0.995 else f"{weight:.2f}"[1:]


def heat_style(weight: float) -> str:
    """The heat colour of `weight` as a Rich style string: readable text on its background."""
    r, g, b = heat_rgb(weight)
    return f"{'black' if text_is_dark(weight) else 'white'} on #{r:02x}{g:02x}{b:02x}"
