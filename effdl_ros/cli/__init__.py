"""The `effdl-ros` command line: one module per capability, discovered at start-up.

Each module here may define ``register(cli: CommandRegistry)``; heavy imports (torch, cv2) belong
inside the command functions so that ``effdl-ros --help`` stays fast.
"""
