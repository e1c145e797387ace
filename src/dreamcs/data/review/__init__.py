"""Human review of a 3D-MeshPref dataset: a local web app, the order items are shown in, the
agreement figures and the fitted correction (``dreamcs data review`` / ``dreamcs data calibrate --fit``).

    sampler.py    the seeded, stratified review queue
    agreement.py  machine vs human and reviewer vs reviewer (Spearman, MAE); isotonic/linear fits
    records.py    answers and fits written to DATASET/calibration.jsonl, then to the table
    server.py     the HTTP app (standard library) serving dreamcs/assets/webapp
"""
