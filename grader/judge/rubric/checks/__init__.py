"""The rubric: one pytest test function per check. See grader/plugin.py for how they are scored."""
