"""Content: message templates (Thai first), variants, and the coupon and recommendation contracts."""
