"""A small drawing surface for the report's figures: Pillow images, text, colour bars, PNG bytes.

Figures are drawn straight into RGB images (no plotting library, no backend, no state
shared between figures): a brain slice is an array pasted at a place, a label is text
drawn beside it. This keeps a figure at a few milliseconds, so that reports cost little
next to the models they show.
"""

from __future__ import annotations

import io

import numpy as np

from . import slices

INK = (29, 29, 31)
MUTED = (110, 110, 120)
WHITE = (255, 255, 255)
GRID = (215, 218, 224)
ACCENT = (43, 87, 151)
WARN = (200, 40, 40)


#: Characters Pillow's own font lacks (drawn as empty boxes: "|z| ▯ 2.98"), and what stands
#: for them in figures (the pages' HTML keeps them).
MISSING_GLYPHS = str.maketrans({"≥": ">=", "≤": "<=", "²": "^2", "³": "^3", "–": "-", "—": "-", "−": "-",
                                "×": "x", "µ": "u"})


def drawable(text) -> str:
    """``text`` as Pillow's own font can draw it (:data:`MISSING_GLYPHS`)."""
    return str(text).translate(MISSING_GLYPHS)


class Canvas:
    """An RGB image to draw a figure on.

    Parameters
    ----------
    width, height : int
        In pixels.
    background : tuple of int
        RGB.
    """

    def __init__(self, width: int, height: int, background=WHITE):
        from PIL import Image, ImageDraw

        self.image = Image.new("RGB", (max(int(width), 1), max(int(height), 1)), background)
        self.pen = ImageDraw.Draw(self.image)
        self._fonts = {}

    @property
    def size(self) -> tuple[int, int]:
        """Width and height in pixels."""
        return self.image.size

    def font(self, size: int = 11):
        """Pillow's own font (no system font needed) at ``size`` pixels."""
        if size not in self._fonts:
            from PIL import ImageFont

            self._fonts[size] = ImageFont.load_default(size=size)
        return self._fonts[size]

    def text_width(self, text: str, size: int = 11) -> float:
        """How wide ``text`` is drawn at ``size``, in pixels."""
        return self.font(size).getlength(drawable(text))

    def text(self, xy, text, size: int = 11, fill=INK, anchor: str = "la") -> None:
        """Write ``text`` at ``xy`` (Pillow anchors: ``la`` left-ascender, ``mm`` middle ...)."""
        self.pen.text((float(xy[0]), float(xy[1])), drawable(text), font=self.font(size), fill=fill, anchor=anchor)

    def vertical_text(self, xy, text, size: int = 11, fill=INK) -> None:
        """Write ``text`` turned a quarter anticlockwise, its end at ``xy`` (x centred)."""
        from PIL import Image, ImageDraw

        font, text = self.font(size), drawable(text)
        width = int(font.getlength(text)) + 2
        label = Image.new("L", (width, size + 4), 0)
        ImageDraw.Draw(label).text((1, 1), text, font=font, fill=255)
        label = label.rotate(90, expand=True)
        x = int(xy[0] - label.size[0] / 2)
        y = int(xy[1] - label.size[1])
        self.image.paste(Image.new("RGB", label.size, fill), (x, y), label)

    def paste(self, rgb: np.ndarray, xy) -> None:
        """Place an RGB uint8 array with its top left corner at ``xy``."""
        from PIL import Image

        self.image.paste(Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB"), (int(xy[0]), int(xy[1])))

    def rectangle(self, box, fill=None, outline=None, width: int = 1) -> None:
        """Draw a rectangle ``(x0, y0, x1, y1)``."""
        self.pen.rectangle([float(v) for v in box], fill=fill, outline=outline, width=width)

    def line(self, points, fill=INK, width: int = 1) -> None:
        """Draw a polyline through ``points``."""
        self.pen.line([(float(x), float(y)) for x, y in points], fill=fill, width=width)

    def png(self) -> bytes:
        """The image as PNG bytes."""
        buffer = io.BytesIO()
        self.image.save(buffer, format="PNG", compress_level=6)
        return buffer.getvalue()


def fit_label(canvas: Canvas, text: str, width: float, size: int = 11) -> str:
    """``text`` shortened with an ellipsis to fit ``width`` pixels."""
    text = str(text)
    if canvas.text_width(text, size) <= width:
        return text
    while text and canvas.text_width(text + "…", size) > width:
        text = text[:-1]
    return text + "…"


def colour_bar(canvas: Canvas, xy, width: int, threshold: float, vmax: float, label: str = "z",
               signed: bool = True) -> None:
    """A horizontal colour bar of a thresholded map from ``-vmax`` to ``vmax``, labelled.

    Values between ``-threshold`` and ``threshold`` are not shown on the maps and are grey
    on the bar. Ticks at ``±threshold`` and ``±vmax``; ``label`` names the statistic.
    ``signed=False``: from 0 to ``vmax`` (a map of positive values, such as R²).
    """
    x, y = int(xy[0]), int(xy[1])
    height = 10
    low = -vmax if signed else 0.0
    values = np.linspace(low, vmax, width)
    strip = slices.colour(values, threshold, vmax)
    strip[np.abs(values) <= threshold] = (200, 200, 200)
    canvas.paste(np.repeat(strip[None].astype(np.uint8), height, axis=0), (x, y))
    canvas.rectangle((x, y, x + width - 1, y + height - 1), outline=MUTED)
    ticks = (-vmax, -threshold, threshold, vmax) if signed else tuple(dict.fromkeys((0.0, threshold, vmax)))
    placed = []  # (left, right) of the labels written below the bar
    for value in sorted(ticks, key=lambda v: abs(v) != vmax):  # the ends first: the threshold's give way
        tick = x + (value - low) / (vmax - low) * (width - 1)
        text = f"{value:.3g}"
        half = canvas.text_width(text, 10) / 2 + 2
        below = not any(left < tick + half and tick - half < right for left, right in placed)
        if below:  # else above the bar: a threshold near the peak wrote "4.074.79" and lost a minus sign
            placed.append((tick - half, tick + half))
            canvas.line([(tick, y + height), (tick, y + height + 3)], fill=MUTED)
            canvas.text((tick, y + height + 4), text, size=10, fill=INK, anchor="ma")
        else:
            canvas.line([(tick, y - 3), (tick, y)], fill=MUTED)
            canvas.text((tick, y - 4), text, size=10, fill=INK, anchor="md")
    canvas.text((x - 6, y + height / 2), label, size=12, fill=INK, anchor="rm")


def diverging(value: float) -> tuple[int, int, int]:
    """A colour for a value in [-1, 1]: blue for negative, white for 0, red for positive."""
    value = float(np.clip(value, -1, 1))
    if value >= 0:
        return (255, int(255 * (1 - 0.8 * value)), int(255 * (1 - 0.85 * value)))
    value = -value
    return (int(255 * (1 - 0.85 * value)), int(255 * (1 - 0.6 * value)), 255)
