"""Flows: durable triggered journeys (stored runs and timers; each step a function of stored state)."""
