"""End-to-end tests of the Discord adapter through the real discord.py client."""
