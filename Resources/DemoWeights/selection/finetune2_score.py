"""Pre-declared selection score for fine-tune round 2: mean of BRATS2013 val Dice WT/TC/ET and synthetic LGG Dice TC/ET (MC 0)."""
import csv, sys, statistics as st
from pathlib import Path
def rows(d): return list(csv.DictReader(open(Path(d)/'cases.csv')))
def mean(rs,k): return st.mean(float(r[k]) for r in rs)
for name in sys.argv[1:]:
    try:
        v=rows(f'/work/runs/sel/{name}_val'); l=rows(f'/work/runs/sel/{name}_lgg')
    except FileNotFoundError: continue
    vals=[mean(v,'dice_WT'),mean(v,'dice_TC'),mean(v,'dice_ET'),mean(l,'dice_TC'),mean(l,'dice_ET')]
    fet=[(1-float(r['specificity_ET']))*96**3*0.008 for r in l]
    print(f"{name:10s} val WT {vals[0]:.3f} TC {vals[1]:.3f} ET {vals[2]:.3f} | lgg WT {mean(l,'dice_WT'):.3f} TC {vals[3]:.3f} ET {vals[4]:.3f} falseET mL {' '.join(f'{x:.1f}' for x in fet)} | score {st.mean(vals):.3f}")
