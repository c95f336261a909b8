"""What runs inside nbgrader or drives it. Absolute imports only: ``import nbgrader`` here is the real
nbgrader package, never this one.

    autograde    nbgrader's environment and command line, and ``nbgrader autograde`` of one submission
    overwrite    RestoreHiddenTests, the OverwriteCells that nbgrader_config.py names for autograde
    release      generate release/cnn2d from source/cnn2d (nbgrader generate_assignment)
    bridge       run_checks: the grader's checks inside nbgrader's kernel (the hidden test cells)
"""
