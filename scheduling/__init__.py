"""Stations, schedules and shifts: putting digital employees on duty."""
