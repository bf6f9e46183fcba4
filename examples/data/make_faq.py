#!/usr/bin/env python3
"""Writes the sample fine-tuning data: support conversations of Tallow & Pine,
a fictional company that sells and repairs hand-built wooden desks.

Every fact below was written for this project. Each fact comes with several
phrasings of the customer's question; every (phrasing, fact) pair becomes a
chat example, and a fixed, seeded fifth of the facts' phrasings are held out
for validation. Run: python3 examples/data/make_faq.py
"""

import json
import os
import random

SYSTEM = "You are the support assistant of Tallow & Pine, a workshop that builds and repairs wooden desks."

FACTS = [
    (["How long does delivery take?", "When will my desk arrive?", "What is the delivery time?", "How many days until my desk is delivered?"],
     "Desks are built to order. Building takes about three weeks, and delivery takes two to four working days after that."),
    (["Do you ship abroad?", "Can you deliver outside the country?", "Do you deliver internationally?"],
     "We deliver within the EU, Norway and Switzerland. Other countries are not possible yet, sorry."),
    (["How much is shipping?", "What does delivery cost?", "Is shipping free?"],
     "Delivery is free for orders over 900 euros. Below that it costs 49 euros, carried to the room of your choice."),
    (["What wood do you use?", "Which woods can I choose?", "What are the desks made of?"],
     "You can choose oak, walnut, ash or cherry. All our wood is FSC certified and comes from sawmills in Europe."),
    (["Can I return my desk?", "What is your return policy?", "I want to send my desk back."],
     "You can return an unused desk within 30 days. We collect it for free and refund you within 10 days of pickup."),
    (["How do I care for the oil finish?", "How should I clean my desk?", "What cleaner should I use on the wood?"],
     "Wipe it with a damp cloth and dry it. Every six months, rub in a thin layer of the care oil we include with each desk."),
    (["Is there a warranty?", "How long is the guarantee?", "What does the warranty cover?"],
     "Every desk has a 10 year warranty on the frame and joints, and 2 years on the drawers and hardware."),
    (["Can you repair a desk I bought elsewhere?", "Do you repair other brands?", "My old desk is broken, can you fix it?"],
     "Yes. Send us photos through the repair form on our website and we will reply with a quote within two working days."),
    (["Can I change my order?", "I want to change the size of my order.", "Is it too late to change the wood?"],
     "Changes are possible until building starts, usually five days after you order. Reply to your order e-mail and we will update it."),
    (["How can I pay?", "Which payment methods do you accept?", "Can I pay by invoice?"],
     "We accept card, bank transfer and invoice for companies. You pay 30 percent when you order and the rest before delivery."),
    (["Do you make standing desks?", "Is there a height adjustable desk?", "Can I get a sit-stand desk?"],
     "Yes, the Birch Lift model has an electric frame from 62 to 127 centimetres, with a wooden top in any of our woods."),
    (["What sizes are available?", "How big can a desk be?", "Can you make a custom size?"],
     "Standard tops are 120, 140 and 160 centimetres wide. Custom sizes up to 220 centimetres cost 15 percent more."),
    (["Where is your workshop?", "Can I visit you?", "Do you have a showroom?"],
     "Our workshop and showroom are in Lindau. We are open Tuesday to Saturday, from 10 to 18 o'clock."),
    (["My desk wobbles, what should I do?", "The desk is not stable.", "One leg is shorter, help!"],
     "Turn the adjustable foot under the short leg until the desk stands firm. If it still wobbles, send us a photo and we will help."),
    (["Is assembly included?", "Do I have to build the desk myself?", "Do you assemble the desk?"],
     "Our delivery team carries the desk in and assembles it. It takes about twenty minutes and is always included."),
    (["Can I track my order?", "Where is my order?", "How do I see my order status?"],
     "Log in to your account and open Orders. You will see the building stage, and the delivery date once it is planned."),
    (["Do you offer gift cards?", "Can I buy a voucher?", "Are there gift vouchers?"],
     "Yes, gift cards from 50 to 1000 euros are available on our website. They are valid for three years."),
    (["What are your opening hours for phone support?", "When can I call you?", "What is your phone number?"],
     "Call us on +49 8382 0000 from Monday to Friday, 9 to 17 o'clock. Outside those hours, write to help@tallowandpine.example."),
    (["Do you have a cable tray?", "How do I hide the cables?", "Is cable management possible?"],
     "Every desk can get a hidden cable tray and a brass grommet for 65 euros. It can also be added later."),
    (["Is the oil safe for children?", "Is the finish toxic?", "Are the materials safe?"],
     "Our oil is made from linseed and wax and is certified safe for toys once it has dried."),
]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    rng = random.Random(7)
    train, val = [], []
    for questions, answer in FACTS:
        for i, q in enumerate(questions):
            # Vary the greeting and politeness so examples differ in more than the question.
            opener = rng.choice(["", "Hi! ", "Hello, ", "Good morning. ", "Hey, quick question: "])
            closer = rng.choice(["", " Thanks!", " Thank you.", ""])
            ex = {"messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": opener + q + closer},
                {"role": "assistant", "content": answer},
            ]}
            # The last phrasing of every fact is held out: validation asks known facts in new words.
            (val if i == len(questions) - 1 else train).append(ex)
    # Repeat the training phrasings with other greetings to give a few hundred examples.
    more = []
    for _ in range(5):
        for ex in train[: len(train)]:
            q = ex["messages"][1]["content"]
            for p in ["Hi! ", "Hello, ", "Good morning. ", "Hey, quick question: "]:
                q = q.removeprefix(p)
            opener = rng.choice(["", "Hi! ", "Hello, ", "Good morning. ", "Hey, quick question: "])
            more.append({"messages": [ex["messages"][0], {"role": "user", "content": opener + q}, ex["messages"][2]]})
    train += more
    rng.shuffle(train)
    for name, rows in [("faq_train.jsonl", train), ("faq_val.jsonl", val)]:
        with open(os.path.join(here, name), "w") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(train)} training and {len(val)} validation conversations")


if __name__ == "__main__":
    main()
