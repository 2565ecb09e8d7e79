"""Headers every email provider puts on our mail: our message id, and one-click unsubscribe (RFC 2369, RFC 8058)."""

from __future__ import annotations

from urllib.parse import quote

MESSAGE_ID_HEADER = "X-Growth-Message-Id"


def unsubscribe_headers(message_id: str, url: str | None, mailto: str | None) -> dict[str, str]:
    """``List-Unsubscribe`` (mailto and/or https) and, with an https URL, ``List-Unsubscribe-Post`` (one click).

    The mailto subject names the message, so an unsubscribe by mail can be traced to the message that led to it.
    """
    targets = []
    if mailto:
        address = mailto.removeprefix("mailto:")
        targets.append(f"<mailto:{address}?subject={quote('unsubscribe ' + message_id)}>")
    if url:
        targets.append(f"<{url}>")
    if not targets:
        return {}
    headers = {"List-Unsubscribe": ", ".join(targets)}
    if url and url.startswith("https://"):
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return headers
