"""Engagement: keeps each user's send-time and channel-preference models current, and answers with them."""
