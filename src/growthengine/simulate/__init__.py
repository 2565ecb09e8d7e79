"""The synthetic JaiKod marketplace: a seeded population with latent habits, driven through the engine.

``run_simulation`` drives an engine on its manual clock (``growth simulate``); ``stream_live`` posts a live
marketplace to a running engine over HTTP (``growth serve --simulate``); ``generate_events`` gives the calls alone.
"""
