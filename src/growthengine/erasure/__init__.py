"""Erasure of a user (CONTRACT.md 10, Thailand's PDPA): the request (``request.py``) and the tombstone that every
pipeline stage applies for its share of the user's data (``stages.py``)."""
