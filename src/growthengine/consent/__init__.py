"""Consent: the audit trail of opt-ins and opt-outs, and the one-click unsubscribe link (RFC 8058)."""
