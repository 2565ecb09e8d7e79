"""The real channel providers: one module per outside service, each a pure adapter behind one interface.

push: ``fcm``; email: ``ses``, ``sendgrid``, ``smtp``; SMS: ``twilio``, ``http_sms``; ads audiences:
``facebook_audience``, ``google_customer_match``. See ``base.py`` for the interface.
"""

from growthengine.channels.providers.base import (
    CredentialsError,
    Delivery,
    DeliveryEvent,
    OutboundMessage,
    Provider,
    WebhookRejected,
)

__all__ = ["CredentialsError", "Delivery", "DeliveryEvent", "OutboundMessage", "Provider", "WebhookRejected"]
