"""Config as data: segments and flows in YAML, validated on load with errors that point at the line."""
