"""The Matrix bot: events in, replies out. Only `bot.py` imports nio; the other modules are
pure logic (rendering, commands, queueing, state, feedback) that tests drive directly."""
