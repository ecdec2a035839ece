"""Report inference results to flight controllers (MAVLink 2) and bare MCUs (framed serial)."""
