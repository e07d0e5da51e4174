"""Training code for qa's models; never imported by the runtime package."""
