"""What a person or a CI system reads: the terminal table, the gate lines and the JSON results."""
