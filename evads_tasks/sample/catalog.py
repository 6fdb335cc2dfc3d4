"""The scripted products of the sample: eight for its test split, one per E-VAds category,
and four others for its training splits (no product is in both, as no video is).

Each product carries everything its storyboard and its five questions need:
on-screen text (Chinese and Latin), the English voiceover line for each beat,
price options, and compliance claims with the verdict a reviewer would give
under the Chinese Advertising Law (广告法). The seed picks among the options.
"""

from __future__ import annotations

from dataclasses import dataclass

from evads_tasks.core.annotations.categories import CATEGORIES


@dataclass(frozen=True)
class Beat:
    """One thing the ad says: the overlay text on screen and the spoken English line."""

    overlay: str
    speech: str


@dataclass(frozen=True)
class Claim:
    """A claim for the RC question, with whether it complies and why (the reference answer)."""

    overlay: str
    speech: str
    compliant: bool
    verdict: str


@dataclass(frozen=True)
class Product:
    category: str
    brand: str
    name: str
    shape: str
    colour: tuple[int, int, int]
    hook: Beat
    feature: Beat
    claims: tuple[Claim, ...]
    prices: tuple[Beat, ...]
    promo: Beat
    audience: str
    pain: str

    @property
    def title(self) -> str:
        """The product-name overlay: Latin brand plus Chinese name."""
        return f"{self.brand} {self.name}"


_ABSOLUTE = "违规：“{term}”属于《广告法》第九条禁止的绝对化用语，无法证实，应删除。"

PRODUCTS: tuple[Product, ...] = (
    Product(
        "Apparel & Bags", "CottonDay", "纯棉T恤", "tee", (236, 240, 245),
        Beat("夏天闷热出汗？", "Hot summer days make you sweat."),
        Beat("100% 纯棉", "This shirt is made of pure cotton."),
        (Claim("全网最好的T恤", "The best shirt in the world.", False,
               _ABSOLUTE.format(term="最好的")),
         Claim("透气不闷汗", "It stays cool and dry all day.", True,
               "合规：“透气不闷汗”是对面料体感的描述，未用绝对化用语或虚假承诺。")),
        (Beat("¥59.9", "Now only fifty nine point nine yuan."),
         Beat("69.9元", "Now only sixty nine point nine yuan.")),
        Beat("买一送一", "Buy one and get one free."),
        "怕热易出汗的年轻上班族和学生", "夏天衣服闷热黏身",
    ),
    Product(
        "Beauty & Cosmetics", "GlowLab", "亮肤精华液", "bottle", (250, 214, 226),
        Beat("熬夜肌肤暗沉？", "Late nights leave your skin dull."),
        Beat("烟酰胺精华", "A light serum with niacinamide."),
        (Claim("7天美白", "Whiter skin in just seven days.", False,
               "违规风险：美白属特殊化妆品功效，“7天”见效承诺缺乏注册与功效依据，属夸大宣传。"),
         Claim("最好的精华", "The best serum you can buy.", False,
               _ABSOLUTE.format(term="最好的"))),
        (Beat("¥129", "Now only one hundred twenty nine yuan."),
         Beat("99元", "Now only ninety nine yuan.")),
        Beat("第二件半价", "The second bottle is half price."),
        "常熬夜、肤色暗沉的年轻女性", "熬夜后肌肤暗沉无光",
    ),
    Product(
        "Personal Care", "SmileMax", "声波电动牙刷", "brush", (120, 200, 230),
        Beat("刷牙总刷不干净？", "Brushing by hand misses spots."),
        Beat("声波深层清洁", "Sonic power cleans every tooth."),
        (Claim("99.9%除菌", "It removes almost all germs.", False,
               "违规风险：“99.9%除菌”须有检测报告支撑，未标明依据即属引人误解的宣传。"),
         Claim("续航30天", "One charge lasts thirty days.", True,
               "合规：续航时长是可验证的产品参数，与实测一致即不属于虚假宣传。")),
        (Beat("¥199", "Now only one hundred ninety nine yuan."),
         Beat("159元", "Now only one hundred fifty nine yuan.")),
        Beat("送2个刷头", "Get two free brush heads."),
        "注重口腔清洁的上班族", "手动刷牙刷不干净",
    ),
    Product(
        "Food & Healthcare", "NutriBox", "每日坚果", "box", (205, 150, 90),
        Beat("下午总是嘴馋？", "Hungry in the afternoon again?"),
        Beat("0添加蔗糖", "Mixed nuts with no added sugar."),
        (Claim("吃了降血压", "Eat it to lower blood pressure.", False,
               "违规：普通食品不得宣称疾病治疗功能（《广告法》第十七条），“降血压”属违法宣传。"),
         Claim("独立小包装", "Each pack is sealed fresh.", True,
               "合规：“独立小包装”是对包装形式的客观描述，可由画面验证，不涉及功效承诺。")),
        (Beat("¥39.9", "Now only thirty nine point nine yuan."),
         Beat("49.9元", "Now only forty nine point nine yuan.")),
        Beat("买2送1", "Buy two and get one free."),
        "办公室白领和健身人群", "下午嘴馋又怕吃得不健康",
    ),
    Product(
        "Home & Furniture", "SleepWell", "记忆棉枕", "pillow", (245, 245, 235),
        Beat("睡醒脖子酸痛？", "Wake up with a sore neck?"),
        Beat("慢回弹记忆棉", "Soft memory foam fits your neck."),
        (Claim("治疗失眠", "It cures your sleep problems.", False,
               "违规：枕头是普通商品，宣称“治疗失眠”涉及医疗功效，违反《广告法》，属虚假宣传。"),
         Claim("国家级品质", "A pillow of national top quality.", False,
               _ABSOLUTE.format(term="国家级"))),
        (Beat("¥89", "Now only eighty nine yuan."),
         Beat("79元", "Now only seventy nine yuan.")),
        Beat("30天试睡", "Try it for thirty nights."),
        "久坐伏案、睡眠质量差的上班族", "睡醒脖子酸痛",
    ),
    Product(
        "Home Appliances", "AirChef", "空气炸锅", "fryer", (60, 60, 66),
        Beat("想吃炸鸡又怕胖？", "Love fried food but fear the fat?"),
        Beat("少油 健康烹饪", "Crispy food with little oil."),
        (Claim("销量第一", "The number one seller online.", False,
               "违规：“销量第一”属绝对化用语，无可查证的数据来源，违反《广告法》第九条。"),
         Claim("5L大容量", "A big five liter basket.", True,
               "合规：容量是可测量的客观参数，与实物一致即为合规描述。")),
        (Beat("¥299", "Now only two hundred ninety nine yuan."),
         Beat("259元", "Now only two hundred fifty nine yuan.")),
        Beat("限时包邮", "Free shipping for a limited time."),
        "注重健康又爱美食的年轻家庭", "想吃油炸食品又怕油脂热量高",
    ),
    Product(
        "Baby & Pet", "PawPal", "全价猫粮", "bag", (240, 170, 60),
        Beat("猫咪挑食不爱吃？", "Is your cat a picky eater?"),
        Beat("鲜肉含量70%", "Seventy percent fresh meat inside."),
        (Claim("猫咪吃了不生病", "Your cat will never get sick.", False,
               "违规：宠物食品不得作疾病预防承诺，“吃了不生病”属保证性虚假宣传。"),
         Claim("无谷配方", "A grain free recipe.", True,
               "合规：“无谷配方”是对配方成分的客观描述，与配料表一致即合规。")),
        (Beat("¥69", "Now only sixty nine yuan."),
         Beat("59元", "Now only fifty nine yuan.")),
        Beat("新客立减10元", "New buyers save ten yuan."),
        "养猫的年轻铲屎官", "猫咪挑食、担心营养不够",
    ),
    Product(
        "Others", "PowerGo", "充电宝", "powerbank", (40, 120, 220),
        Beat("出门手机没电？", "Phone dead when you go out?"),
        Beat("10000mAh 快充", "Fast charging with a big battery."),
        (Claim("永不爆炸", "It will never ever explode.", False,
               "违规：“永不爆炸”是无法保证的绝对化承诺，违反《广告法》第九条，误导消费者。"),
         Claim("可带上飞机", "Safe to take on a plane.", True,
               "合规：10000mAh低于民航限额，可随身登机，属可核实的事实性描述。")),
        (Beat("¥79", "Now only seventy nine yuan."),
         Beat("89元", "Now only eighty nine yuan.")),
        Beat("赠数据线", "A free cable comes in the box."),
        "经常出差通勤的上班族和学生", "外出时手机电量焦虑",
    ),
)

# The products of the sample's SFT videos, then of its RL videos (2 each).
TRAINING_PRODUCTS: tuple[Product, ...] = (
    Product(
        "Apparel & Bags", "TrailPack", "轻量双肩包", "bag", (70, 110, 90),
        Beat("通勤背包太重？", "Is your work bag too heavy?"),
        Beat("仅重480克", "It weighs less than half a kilo."),
        (Claim("永不磨损", "It will never wear out.", False,
               "违规：“永不磨损”是无法保证的绝对化承诺，违反《广告法》第九条。"),
         Claim("防泼水面料", "The fabric keeps light rain out.", True,
               "合规：“防泼水”是可检测的面料性能描述，与实测一致即合规。")),
        (Beat("¥149", "Now only one hundred forty nine yuan."),
         Beat("139元", "Now only one hundred thirty nine yuan.")),
        Beat("赠防雨罩", "A free rain cover comes with it."),
        "每天通勤的上班族和大学生", "背包太重压得肩膀酸痛",
    ),
    Product(
        "Food & Healthcare", "LeafJoy", "冷泡绿茶", "box", (120, 180, 90),
        Beat("白水喝不下去？", "Plain water tastes boring?"),
        Beat("冷水3分钟出味", "It brews in cold water in minutes."),
        (Claim("喝了能减肥", "Drink it to lose weight.", False,
               "违规：普通食品不得宣称减肥等保健功能（《广告法》），“喝了能减肥”属违法宣传。"),
         Claim("独立三角包", "Each tea bag is packed alone.", True,
               "合规：“独立三角包”是对包装形式的客观描述，可由画面验证，不涉及功效承诺。")),
        (Beat("¥45", "Now only forty five yuan."),
         Beat("42.8元", "Now only forty two point eight yuan.")),
        Beat("买3送1", "Buy three and get one free."),
        "办公室白领和学生", "白水无味喝不下去",
    ),
    Product(
        "Beauty & Cosmetics", "SunVeil", "清透防晒乳", "bottle", (255, 236, 180),
        Beat("出门怕晒黑？", "Afraid the sun will tan you?"),
        Beat("SPF50+ 高倍防晒", "High protection for a long day."),
        (Claim("100%防晒", "It blocks all of the sun.", False,
               "违规：“100%防晒”无法实现，属绝对化、虚假的功效承诺，违反《广告法》。"),
         Claim("清爽不油腻", "It feels light, never greasy.", True,
               "合规：“清爽不油腻”是对肤感的描述，未用绝对化用语或功效保证。")),
        (Beat("¥109", "Now only one hundred nine yuan."),
         Beat("95元", "Now only ninety five yuan.")),
        Beat("送旅行装", "Get a free travel size."),
        "经常户外通勤的年轻女性", "夏天出门容易晒黑晒伤",
    ),
    Product(
        "Home Appliances", "CleanBot", "扫地机器人", "robot", (200, 200, 210),
        Beat("每天扫地太累？", "Tired of sweeping every day?"),
        Beat("自动回充 强劲吸力", "Strong suction and auto charging."),
        (Claim("全球领先", "The most advanced in the world.", False,
               _ABSOLUTE.format(term="全球领先")),
         Claim("一次扫完三居室", "One run cleans a big home.", True,
               "合规：清扫面积是可实测的产品参数，与实测一致即为合规描述。")),
        (Beat("¥1288", "Now only twelve eighty eight yuan."),
         Beat("1180元", "Now only eleven eighty yuan.")),
        Beat("以旧换新", "Trade in your old one."),
        "工作忙碌的双职工家庭", "下班后没时间打扫卫生",
    ),
)

CLOSING = Beat("立即下单 Order now", "Order now.")

assert [p.category for p in PRODUCTS] == list(CATEGORIES), "one product per category, in order"
# A training video is told apart from the test videos by the price on its screen (the tests'
# scripted LLM finds a video by its price's digits): no training price holds a test price's.
_DIGITS = {p: [b.overlay.strip("¥元") for b in p.prices] for p in PRODUCTS + TRAINING_PRODUCTS}
assert not [(a, b) for t in TRAINING_PRODUCTS for a in _DIGITS[t] for p in PRODUCTS
            for b in _DIGITS[p] if a in b or b in a], "a training price holds a test price"
