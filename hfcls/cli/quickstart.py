"""`make demo`: prepare the bundled digits, train the default recipe, classify one image.

Everything runs offline: the data is scikit-learn's bundled digits and the model
is built from a config.
"""

import time
from datetime import datetime
from pathlib import Path

from hfcls.cli import cli_entry, heavy_imports

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "digits" / "resnet-tiny_1xb64_digits.yaml"
DATA = Path("data/digits")


@cli_entry
def main(argv=None):
    with heavy_imports():
        from hfcls.api import train
        from hfcls.data.prepare import prepare_digits
        from hfcls.recipe import load_recipe

    if not (DATA / "val").is_dir():
        counts = prepare_digits(DATA)
        print(f"prepared digits in {DATA}: {counts['train']} train, {counts['val']} val images")
    work_dir = Path("work_dirs/digits_demo") / datetime.now().strftime("%Y%m%d-%H%M%S")
    recipe = load_recipe(RECIPE, [f"work_dir={work_dir}"])
    start = time.perf_counter()
    metrics = train(recipe, work_dir)
    seconds = time.perf_counter() - start
    print(
        f"\nvalidation top-1 {metrics['accuracy_top1']:.2f}% after training {seconds:.1f} s "
        f"({recipe.train.epochs} epochs) -> {work_dir}"
    )
    image = sorted((DATA / "val").glob("*/*.png"))[0]
    with heavy_imports():
        from transformers import pipeline

    best = pipeline("image-classification", model=str(work_dir / "best"))(str(image), top_k=1)[0]
    print(f"{image}: predicted {best['label']} (score {best['score']:.4f}), true {image.parent.name}")
    print(f"try it in the browser: .venv/bin/hfcls-app {work_dir / 'best'} --examples {DATA / 'val'}")


if __name__ == "__main__":
    main()
