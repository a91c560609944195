"""Answering: prompt building, local generation, grounding check, language handling."""
