"""The marketplace's fixed vocabulary (provinces, categories, Thai titles, prices) and its live catalog of listings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Province:
    name: str
    thai: str
    weight: float


PROVINCES: tuple[Province, ...] = (
    Province("Bangkok", "กรุงเทพมหานคร", 0.34),
    Province("Nonthaburi", "นนทบุรี", 0.07),
    Province("Chon Buri", "ชลบุรี", 0.08),
    Province("Chiang Mai", "เชียงใหม่", 0.10),
    Province("Khon Kaen", "ขอนแก่น", 0.07),
    Province("Nakhon Ratchasima", "นครราชสีมา", 0.08),
    Province("Phuket", "ภูเก็ต", 0.06),
    Province("Songkhla", "สงขลา", 0.06),
    Province("Udon Thani", "อุดรธานี", 0.05),
    Province("Surat Thani", "สุราษฎร์ธานี", 0.05),
    Province("Chiang Rai", "เชียงราย", 0.04),
)
PROVINCE_WEIGHTS = np.array([p.weight for p in PROVINCES]) / sum(p.weight for p in PROVINCES)


@dataclass(frozen=True, slots=True)
class Category:
    key: str
    thai: str
    median_price: float
    price_spread: float  # sigma of the log-normal price
    multi_stock: float  # share of listings a shop sells several of
    items: tuple[str, ...]


CATEGORIES: tuple[Category, ...] = (
    Category("cameras", "กล้องถ่ายรูป", 8500, 0.7, 0.05, (
        "กล้องฟิล์ม Olympus OM-1", "กล้องฟิล์ม Nikon FM2", "กล้อง Fujifilm X100V", "กล้อง Sony A6400 พร้อมเลนส์คิท",
        "เลนส์ Canon EF 50mm f/1.8", "กล้อง Ricoh GR III", "กล้องฟิล์ม Canon AE-1", "กล้อง Instax Mini 11")),
    Category("phones", "มือถือและแท็บเล็ต", 9000, 0.6, 0.15, (
        "iPhone 13 128GB สีฟ้า", "iPhone 12 Pro 256GB", "Samsung Galaxy S23", "iPad Air 5 Wi-Fi 64GB",
        "OPPO Reno 10 5G", "Xiaomi Redmi Note 12", "vivo V27", "Samsung Galaxy Tab S8")),
    Category("fashion", "แฟชั่น", 650, 0.8, 0.35, (
        "เสื้อยืดวินเทจ 90s", "กระเป๋า Coach แท้", "รองเท้า Nike Air Force 1", "ยีนส์ Levi's 501",
        "ชุดไทยประยุกต์", "กระเป๋าผ้าฝ้ายทอมือ", "เสื้อเชิ้ตลายดอก Hawaii", "รองเท้าผ้าใบ Converse")),
    Category("furniture", "เฟอร์นิเจอร์และของแต่งบ้าน", 2800, 0.8, 0.1, (
        "โต๊ะไม้สักเก่า", "โซฟาผ้า 3 ที่นั่ง", "ตู้เสื้อผ้าบานเลื่อน", "เก้าอี้ทำงาน Ergonomic",
        "ชั้นวางหนังสือไม้", "โคมไฟตั้งโต๊ะวินเทจ", "ตู้กับข้าวไม้โบราณ")),
    Category("books", "หนังสือ", 250, 0.6, 0.3, (
        "หนังสือ แฮร์รี่ พอตเตอร์ ชุดครบ 7 เล่ม", "มังงะ One Piece เล่ม 1-50", "หนังสือเตรียมสอบ TCAS",
        "นิยาย สี่แผ่นดิน", "หนังสือ Atomic Habits ฉบับภาษาไทย", "การ์ตูน โดราเอมอน ฉบับพิมพ์เก่า")),
    Category("electronics", "เครื่องใช้ไฟฟ้า", 3500, 0.7, 0.15, (
        "หูฟัง Sony WH-1000XM4", "ลำโพง JBL Flip 5", "Nintendo Switch OLED", "โน้ตบุ๊ก ASUS VivoBook 15",
        "หม้อทอดไร้น้ำมัน Philips", "พัดลม Hatari 16 นิ้ว", "หม้อหุงข้าวไฟฟ้า Sharp")),
    Category("collectibles", "ของสะสม", 1500, 1.0, 0.1, (
        "ฟิกเกอร์ Gundam RG", "Art Toy Molly", "แสตมป์ไทยเก่า ชุดครบ", "เหรียญกษาปณ์ที่ระลึก",
        "การ์ดโปเกมอน Charizard", "รถเหล็ก Tomica รุ่นเก่า")),
    Category("sports", "กีฬาและกิจกรรม", 1800, 0.8, 0.15, (
        "จักรยานเสือภูเขา Trek 🚲", "ไม้แบด Yonex Astrox", "ดัมเบลปรับน้ำหนัก 20kg", "รองเท้าวิ่ง ASICS Novablast",
        "เต็นท์ Coleman 4 คน", "ไม้กอล์ฟ Callaway ชุดครบ")),
)

CONDITIONS = ("สภาพนางฟ้า", "มือสอง สภาพดี", "ใช้งานปกติ", "ครบกล่อง", "เหมือนใหม่", "มีตำหนิเล็กน้อย", "ราคาเบาๆ",
              "ส่งฟรี", "ของแท้ 100%", "")

IMAGE_HOST = "https://img.jaikod.example.test/listings"


def image_url(listing_id: str) -> str:
    return f"{IMAGE_HOST}/{listing_id}.jpg"


def round_price(value: float) -> int:
    """Prices people set: whole baht, in tens above 100 and ending in 9 or 0 as sellers like them."""
    if value < 100:
        return max(20, int(round(value / 5.0) * 5))
    rounded = int(round(value / 10.0) * 10)
    return rounded - 1 if rounded % 100 == 0 and rounded >= 500 else rounded


class ListingPool:
    """Indices of listings, with O(1) add, remove and uniform pick (swap-remove)."""

    __slots__ = ("_items", "_pos")

    def __init__(self) -> None:
        self._items: list[int] = []
        self._pos: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._items)

    def add(self, index: int) -> None:
        if index not in self._pos:
            self._pos[index] = len(self._items)
            self._items.append(index)

    def remove(self, index: int) -> None:
        pos = self._pos.pop(index, None)
        if pos is None:
            return
        last = self._items.pop()
        if last != index:
            self._items[pos] = last
            self._pos[last] = pos

    def pick(self, u: float) -> int | None:
        """The listing at fraction ``u`` (a uniform draw in [0, 1)) of the pool, or None if empty."""
        if not self._items:
            return None
        return self._items[min(int(u * len(self._items)), len(self._items) - 1)]


class Catalog:
    """Every listing ever created (columns by listing index) and pools of those still for sale."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.seller: list[int] = []
        self.category: list[int] = []
        self.province: list[int] = []
        self.title: list[str] = []
        self.price: list[int] = []
        self.stock: list[int] = []
        self.created_us: list[int] = []
        self.active = ListingPool()
        self.by_category: list[ListingPool] = [ListingPool() for _ in CATEGORIES]
        self.by_province: list[ListingPool] = [ListingPool() for _ in PROVINCES]
        self.by_seller: dict[int, ListingPool] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def create(self, rng: np.random.Generator, seller: int, category: int, province: int, at_us: int) -> int:
        cat = CATEGORIES[category]
        index = len(self.ids)
        item = cat.items[int(rng.integers(len(cat.items)))]
        condition = CONDITIONS[int(rng.integers(len(CONDITIONS)))]
        price = round_price(float(cat.median_price * np.exp(rng.normal(0.0, cat.price_spread))))
        stock = int(rng.integers(2, 11)) if rng.random() < cat.multi_stock else 1
        self.ids.append(f"L{index + 1:07d}")
        self.seller.append(seller)
        self.category.append(category)
        self.province.append(province)
        self.title.append(f"{item} {condition}".strip())
        self.price.append(price)
        self.stock.append(stock)
        self.created_us.append(at_us)
        self.active.add(index)
        self.by_category[category].add(index)
        self.by_province[province].add(index)
        self.by_seller.setdefault(seller, ListingPool()).add(index)
        return index

    def available(self, index: int) -> bool:
        return self.stock[index] > 0

    def sell(self, index: int) -> bool:
        """Take one unit; the listing leaves the pools when the last one goes. False if none was left."""
        if self.stock[index] <= 0:
            return False
        self.stock[index] -= 1
        if self.stock[index] == 0:
            self.active.remove(index)
            self.by_category[self.category[index]].remove(index)
            self.by_province[self.province[index]].remove(index)
            pool = self.by_seller.get(self.seller[index])
            if pool is not None:
                pool.remove(index)
        return True

    def reprice(self, index: int, value: float) -> int:
        """Set a new asking price (rounded as sellers do); returns it."""
        self.price[index] = round_price(value)
        return self.price[index]

    def listing_properties(self, index: int) -> dict[str, object]:
        """What ``listing_created`` says about a listing."""
        lid = self.ids[index]
        return {"listing_id": lid, "title": self.title[index], "price": self.price[index],
                "category": CATEGORIES[self.category[index]].key, "image_url": image_url(lid)}

    def view_properties(self, index: int) -> dict[str, object]:
        """What ``item_viewed`` says about a listing."""
        return {"listing_id": self.ids[index], "category": CATEGORIES[self.category[index]].key,
                "price": self.price[index], "province": PROVINCES[self.province[index]].name}

    def cart_properties(self, index: int) -> dict[str, object]:
        """What ``add_to_cart`` says about a listing."""
        lid = self.ids[index]
        return {"listing_id": lid, "title": self.title[index], "price": self.price[index],
                "image_url": image_url(lid), "stock": self.stock[index]}
