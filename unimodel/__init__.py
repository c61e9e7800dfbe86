"""The proposed two-step cycle-consistent model (`mine`)."""
