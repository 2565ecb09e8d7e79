"""How many SMS segments a text takes (what carriers bill).

GSM-7 (the GSM 03.38 basic set, extension characters costing two septets): 160 in one segment, 153 per
segment when split. Anything else, Thai included, goes as UCS-2: 70 UTF-16 units in one, 67 when split.
A split never cuts an escape pair or a surrogate pair, as handsets do.
"""

from __future__ import annotations

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def sms_segments(text: str) -> int:
    """The number of segments ``text`` is sent in (an empty text still takes one)."""
    if is_gsm7(text):
        units = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        single, part = 160, 153
    else:
        units = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        single, part = 70, 67
    if sum(units) <= single:
        return 1
    segments, used = 1, 0
    for size in units:
        if used + size > part:
            segments, used = segments + 1, 0
        used += size
    return segments


def encoding(text: str) -> str:
    """``GSM-7`` or ``UCS-2``."""
    return "GSM-7" if is_gsm7(text) else "UCS-2"
