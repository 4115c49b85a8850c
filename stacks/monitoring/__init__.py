"""Alarms on every platform failure signal, one notification topic, one dashboard."""
