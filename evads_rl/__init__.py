"""evads_rl: E-VAds-R1 training (SFT then MG-GRPO) on TRL, and a verl reward adapter."""
