"""The optimization layer (SPEC 4): send time, channel scores, experiments, personalized content.

Plain Python with numpy and scipy: every function takes state and instants and returns a decision that carries
its reason and inputs. Storage, the gate and the API wire these in; nothing here reads the clock or a database.
"""
