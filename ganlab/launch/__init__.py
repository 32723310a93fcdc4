"""Launchers: how the jobs of a run or sweep are placed on hardware."""
