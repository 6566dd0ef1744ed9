"""What instructors, TAs and students read: HTML reports, the class index, gradebook CSVs."""
