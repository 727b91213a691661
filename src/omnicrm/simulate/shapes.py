"""The shapes of the demo merchant's raw exports: file names, exact CSV headers, fixed codes.

These are a contract with the importers (which map these columns), so they live in one place and
every writer uses them.
"""

from __future__ import annotations

__all__ = [
    "EVENTS_MP_FILE",
    "EVENTS_WEB_FILE",
    "GROUND_TRUTH_DIR",
    "GUIDES_PER_STORE",
    "IDENTIFIERS_FILE",
    "JD_ORDERS_FILE",
    "JD_ORDERS_HEADER",
    "JD_STATUSES",
    "MANIFEST_FILE",
    "MEMBERS_FILE",
    "MEMBERS_HEADER",
    "MESSAGES_FILE",
    "MESSAGE_CHANNELS",
    "MP_APPID",
    "OA_APPID",
    "ORDERS_TRUTH_FILE",
    "PEOPLE_FILE",
    "POS_FILE",
    "POS_HEADER",
    "STORES",
    "TMALL_ACTIVITIES",
    "TMALL_ORDERS_FILE",
    "TMALL_ORDERS_HEADER",
    "TMALL_STATUSES",
    "WECHAT_FOLLOWERS_FILE",
    "WECHAT_FOLLOWERS_HEADER",
]

TMALL_ORDERS_FILE = "tmall_orders.csv"
JD_ORDERS_FILE = "jd_orders.csv"
POS_FILE = "pos_sales.csv"
MEMBERS_FILE = "members.csv"
WECHAT_FOLLOWERS_FILE = "wechat_followers.csv"
EVENTS_WEB_FILE = "events_web.jsonl"
EVENTS_MP_FILE = "events_miniprogram.jsonl"
MESSAGES_FILE = "messages.jsonl"
GROUND_TRUTH_DIR = "ground_truth"
PEOPLE_FILE = "ground_truth/people.parquet"
IDENTIFIERS_FILE = "ground_truth/identifiers.parquet"
ORDERS_TRUTH_FILE = "ground_truth/orders.parquet"
MANIFEST_FILE = "manifest.json"

TMALL_ORDERS_HEADER: tuple[str, ...] = (
    "订单编号", "子订单编号", "买家会员名", "收货人姓名", "联系手机", "收货地址", "商家编码", "宝贝标题",
    "类目", "品牌", "颜色", "尺码", "购买数量", "价格", "优惠金额", "实付金额", "退款金额", "订单状态",
    "活动", "订单创建时间", "订单付款时间", "退款时间",
)  # fmt: skip

JD_ORDERS_HEADER: tuple[str, ...] = (
    "订单号", "商品编号", "商品名称", "一级分类", "品牌", "颜色", "尺码", "订购数量", "京东价", "优惠金额",
    "应付金额", "退款金额", "下单帐号", "客户姓名", "联系电话", "客户地址", "订单状态", "促销活动",
    "下单时间", "付款确认时间", "退款时间",
)  # fmt: skip

POS_HEADER: tuple[str, ...] = (
    "store_code", "store_name", "receipt_no", "line_no", "member_card", "phone", "guide_id", "sku",
    "product_name", "category", "brand", "colour", "size", "qty", "unit_price", "discount", "amount",
    "refund_amount", "sold_at", "refunded_at", "payment_method",
)  # fmt: skip

MEMBERS_HEADER: tuple[str, ...] = (
    "member_card", "name", "gender", "birthday", "phone", "email", "province", "city", "district",
    "address", "joined_store", "joined_at",
)  # fmt: skip

WECHAT_FOLLOWERS_HEADER: tuple[str, ...] = (
    "openid", "unionid", "nickname", "subscribe", "subscribe_time", "subscribe_scene", "qr_scene_str",
    "remark", "tagid_list",
)  # fmt: skip

TMALL_STATUSES: tuple[str, ...] = ("交易成功", "交易关闭", "卖家已发货", "等待买家付款")
JD_STATUSES: tuple[str, ...] = ("完成", "已取消", "等待出库", "退款成功")
TMALL_ACTIVITIES: tuple[str, ...] = ("", "双11定金", "双11尾款", "双11", "双12")
MESSAGE_CHANNELS: tuple[str, ...] = ("wangwang", "jd_im", "wechat_oa", "sms", "email", "clerk_note")

OA_APPID = "wx_oa_demo"
MP_APPID = "wx_mp_demo"

# (code, name, city) — the city index into reference.CITIES is looked up by name.
STORES: tuple[tuple[str, str, str], ...] = (
    ("S001", "上海静安店", "上海市"),
    ("S002", "杭州西湖店", "杭州市"),
    ("S003", "南京新街口店", "南京市"),
)
GUIDES_PER_STORE = 4  # S001: G01..G04, S002: G05..G08, S003: G09..G12
