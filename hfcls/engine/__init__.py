"""Training: the Accelerator and run (`setup`), the loop (`loop.fit`), one step (`steps`) and their parts."""
