"""The fashion brand's product catalogue (~300 styles) and seasonal sampling of order lines from it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from omnicrm.simulate.vec import Rng, StrArray, cat, fmt_fixed, fmt_int, pick

CATEGORIES = ("连衣裙", "T恤", "衬衫", "牛仔裤", "外套", "羽绒服", "针织衫", "半身裙", "运动鞋", "包袋")
DRESS, TEE, SHIRT, JEANS, COAT, DOWN, KNIT, SKIRT, SHOES, BAG = range(10)
BRANDS = ("言木", "言木·都市", "YANMU SPORT", "YANMU DENIM")
COLOURS = ("黑色", "白色", "红色", "藏青", "米色", "灰色", "卡其")
COLOUR_CODES = ("BK", "WH", "RD", "NV", "BG", "GY", "KH")
SIZES = ("S", "M", "L", "XL", "XXL", *(str(s) for s in range(35, 45)), "均码")
SHOE_SIZE0, ONE_SIZE = 5, 15

_PRICE_RANGE = (
    (199, 799),
    (59, 199),
    (129, 399),
    (159, 499),
    (299, 999),
    (599, 1299),
    (159, 599),
    (129, 459),
    (259, 899),
    (199, 999),
)
_STYLE_WORDS = (
    ("法式碎花", "收腰显瘦", "真丝", "雪纺", "小黑裙", "针织长款"),
    ("纯棉宽松", "印花短袖", "基础圆领", "oversize", "冰丝", "字母刺绣"),
    ("商务免烫", "牛津纺", "条纹", "亚麻", "法式", "泡泡袖"),
    ("阔腿", "直筒", "高腰微喇", "破洞", "修身小脚", "老爹"),
    ("双面羊绒", "风衣", "西装", "机车皮衣", "毛呢", "连帽夹克"),
    ("白鸭绒", "长款过膝", "短款面包", "轻薄", "鹅绒", "连帽加厚"),
    ("羊毛开衫", "麻花", "V领", "高领打底", "马海毛", "慵懒风"),
    ("A字", "百褶", "鱼尾", "半身长裙", "牛仔", "包臀"),
    ("厚底老爹", "透气跑步", "帆布", "复古德训", "轻便板鞋", "增高"),
    ("真皮托特", "斜挎", "腋下", "帆布", "链条", "双肩"),
)
# month (row) × category (column) demand weights: down jackets in winter, dresses in summer.
_SEASON = np.array(
    [
        [0.3, 0.3, 0.6, 1.0, 1.2, 2.6, 1.6, 0.4, 0.9, 0.8],
        [0.4, 0.3, 0.7, 1.0, 1.3, 2.0, 1.5, 0.5, 0.9, 0.8],
        [0.8, 0.6, 1.1, 1.1, 1.6, 0.6, 1.3, 0.8, 1.0, 0.8],
        [1.3, 1.0, 1.3, 1.1, 1.4, 0.2, 0.9, 1.1, 1.0, 0.8],
        [1.9, 1.7, 1.2, 1.0, 0.7, 0.05, 0.4, 1.4, 1.0, 0.8],
        [2.3, 2.2, 1.0, 0.9, 0.4, 0.03, 0.2, 1.5, 1.0, 0.8],
        [2.4, 2.4, 0.9, 0.8, 0.3, 0.03, 0.2, 1.5, 1.0, 0.8],
        [2.1, 2.1, 1.0, 0.9, 0.5, 0.05, 0.3, 1.3, 1.0, 0.8],
        [1.2, 1.1, 1.3, 1.2, 1.3, 0.3, 1.0, 1.1, 1.0, 0.8],
        [0.7, 0.6, 1.2, 1.2, 1.7, 1.2, 1.5, 0.8, 1.0, 0.9],
        [0.5, 0.4, 0.9, 1.1, 1.5, 2.6, 1.7, 0.6, 1.0, 1.0],
        [0.4, 0.3, 0.7, 1.0, 1.3, 2.8, 1.7, 0.5, 0.9, 1.0],
    ]
)
_MALE_FACTOR = np.array([0.05, 1.2, 1.3, 1.2, 1.0, 1.0, 0.8, 0.05, 1.3, 0.4])
N_STYLES = 300


@dataclass(frozen=True)
class Catalogue:
    """Styles sorted by category; `cat_lo`/`cat_hi` bound each category's rows in `cw`."""

    code: StrArray
    jd_sku: StrArray
    title: StrArray
    category: np.ndarray
    brand: np.ndarray
    price_cents: np.ndarray
    colour0: np.ndarray
    n_colours: np.ndarray
    cw: np.ndarray
    cat_lo: np.ndarray
    cat_hi: np.ndarray

    @property
    def n(self) -> int:
        return len(self.category)


def build_catalogue(rng: Rng, n_styles: int = N_STYLES) -> Catalogue:
    """Draw ~300 styles with prices, sub-brands, colours and popularity."""
    category = np.sort(rng.choice(len(CATEGORIES), size=n_styles, p=np.full(10, 0.1)))
    brand = rng.choice(len(BRANDS), size=n_styles, p=[0.45, 0.25, 0.15, 0.15])
    brand = np.where(category == JEANS, np.where(rng.random(n_styles) < 0.6, 3, brand), brand)
    brand = np.where(category == SHOES, np.where(rng.random(n_styles) < 0.7, 2, brand), brand)
    lo = np.array([r[0] for r in _PRICE_RANGE])[category]
    hi = np.array([r[1] for r in _PRICE_RANGE])[category]
    price = (lo + rng.random(n_styles) * (hi - lo)) // 10 * 10 + 9
    price = np.minimum(price, hi)
    year = rng.choice([24, 25, 26], size=n_styles, p=[0.3, 0.45, 0.25])
    season = np.where(np.isin(category, [DOWN, KNIT, COAT]), 2, rng.integers(0, 2, size=n_styles))
    word = rng.integers(0, 6, size=n_styles)
    words = pick([w for ws in _STYLE_WORDS for w in ws], category * 6 + word)
    gender = np.where(rng.random(n_styles) < 0.7, 0, rng.integers(1, 4, n_styles))
    gender_tag = pick(("女", "男", "女", "中性"), np.where(np.isin(category, [DRESS, SKIRT]), 0, gender))
    title = cat(
        pick(BRANDS, brand),
        " 20",
        fmt_fixed(year, 2),
        pick(("春夏", "早秋", "秋冬"), season),
        "新款 ",
        words,
        pick(CATEGORIES, category),
        " ",
        gender_tag,
    )
    code = cat(
        "YM",
        fmt_fixed(year, 2),
        pick("SAW", season),
        fmt_fixed(category, 2),
        fmt_fixed(np.arange(n_styles), 3),
    )
    jd = 100041000000 + np.arange(n_styles) * 1000 + rng.integers(0, 1000, size=n_styles)
    popularity = 1.0 / (1 + rng.permutation(n_styles)) ** 0.6
    cw = np.concatenate([[0.0], np.cumsum(popularity)])
    counts = np.bincount(category, minlength=len(CATEGORIES))
    cat_hi = np.cumsum(counts)
    return Catalogue(
        code=code,
        jd_sku=fmt_int(jd),
        title=title,
        category=category,
        brand=brand,
        price_cents=(price * 100).astype(np.int64),
        colour0=rng.integers(0, len(COLOURS), size=n_styles),
        n_colours=rng.integers(2, 5, size=n_styles),
        cw=cw,
        cat_lo=cat_hi - counts,
        cat_hi=cat_hi,
    )


def sample_lines(
    rng: Rng, cat_: Catalogue, month: np.ndarray, fav_cat: np.ndarray, male: np.ndarray,
    apparel_size: np.ndarray, shoe_size: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Style, colour and size index per line: seasonal category mix, a personal favourite category,
    the buyer's own size most of the time (gifts otherwise)."""
    n = len(month)
    table = np.concatenate([_SEASON, _SEASON * _MALE_FACTOR[None, :]])  # 24 rows: month × gender
    cum = np.cumsum(table, axis=1)
    cum /= cum[:, -1:]
    seasonal = np.zeros(n, dtype=np.int64)
    row = month - 1 + 12 * male.astype(np.int64)
    u = rng.random(n)
    for k in range(len(CATEGORIES) - 1):
        seasonal += u >= cum[row, k]
    category = np.where(rng.random(n) < 0.35, fav_cat, seasonal)
    lo, hi = cat_.cat_lo[category], cat_.cat_hi[category]
    empty = hi <= lo
    lo, hi = np.where(empty, 0, lo), np.where(empty, cat_.n, hi)
    style = np.clip(
        np.searchsorted(cat_.cw, cat_.cw[lo] + rng.random(n) * (cat_.cw[hi] - cat_.cw[lo]), "right") - 1,
        lo,
        hi - 1,
    )
    colour = (cat_.colour0[style] + rng.integers(0, 4, size=n) % cat_.n_colours[style]) % len(COLOURS)
    gift = rng.random(n) < 0.15
    apparel = np.where(gift, rng.integers(0, 5, size=n), apparel_size)
    shoes = np.where(gift, rng.integers(SHOE_SIZE0, SHOE_SIZE0 + 10, size=n), shoe_size)
    scat = cat_.category[style]
    size = np.where(scat == SHOES, shoes, np.where(scat == BAG, ONE_SIZE, apparel))
    return style, colour, size
