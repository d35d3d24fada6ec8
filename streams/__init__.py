"""hallpass stream processing: policy, consent state, the processor, and the command line."""
