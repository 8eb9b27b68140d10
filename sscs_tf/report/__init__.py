"""What a person looks at after a run: the HTML report of grounding predictions and the
paper's analysis figures (Figs. 7 and 8) as matplotlib plots.

May import (from sscs_tf): core, data, scoring, models.
"""
