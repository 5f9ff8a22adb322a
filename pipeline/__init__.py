"""Pure algorithm code for SSPCM: no Ray import anywhere in this package."""
