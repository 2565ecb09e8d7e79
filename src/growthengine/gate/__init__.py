"""The send gate: consent, frequency caps, quiet hours and holdouts, decided in one call right before a send."""
