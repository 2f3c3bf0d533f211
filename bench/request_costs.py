"""The requests readers make in an hour on a bucket where nothing new lands, and their price,
with and without NOTIFY_QUEUE.

    python bench/request_costs.py [--servers 10 1000 10000] [--readers 3] [--json]

Computed from the reader's schedule (SERVER=*, COORDINATION=s3, the settings' defaults); what
every poll costs, news or not. Each object that lands adds one GET and one PUT of its
server's position, and with the queue an SQS message (sent, received, deleted) and the LIST
of its server. Prices: S3 Standard and SQS standard queues in us-east-1: LIST and PUT $0.005
per 1,000, GET $0.0004 per 1,000, SQS $0.40 per million requests.
"""

import argparse
import json
import math

PRICE = {"LIST": 0.005 / 1000, "PUT": 0.005 / 1000, "GET": 0.0004 / 1000,
         "SQS": 0.40 / 1000000}
HOUR = 3600.0
NOTIFY_WAIT = 2  # seconds a receive waits (nxlog_s3/reader/notify.py)


def requests_per_hour(servers, readers, queue, poll=10.0, full_poll=600.0, lease=30.0,
                      late_interval=900.0, sweep_interval=86400.0):
    """LIST, PUT and SQS requests per hour of READERS readers sharing SERVERS servers, with
    NOTIFY_QUEUE (QUEUE) or without."""
    pages = math.ceil(servers / 1000.0)
    turn = max(1.0, min(lease / 3.0, poll))
    window = full_poll if queue else poll  # a quiet server's listing: every poll, or backstop
    late = window * math.ceil(late_interval / window)  # a re-listing comes with a listing
    listing = servers * (HOUR / window + HOUR / late + HOUR / sweep_interval)
    listing += readers * pages * HOUR / window  # SERVER=*: the servers' first segments
    coordination = readers * (HOUR / turn  # the beats of the others
                              + pages * HOUR / lease)  # the states, each lease
    return {"LIST": round(listing + coordination), "GET": 0,  # nothing new: nothing to get
            "PUT": round(readers * HOUR / turn),
            "SQS": round(readers * HOUR / NOTIFY_WAIT) if queue else 0}


def price(requests):
    return sum(PRICE[kind] * number for kind, number in requests.items())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--servers", type=int, nargs="+", default=[10, 1000, 10000])
    parser.add_argument("--readers", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    arguments = parser.parse_args()
    if not arguments.json:
        print("| servers | NOTIFY_QUEUE | LIST/h | GET/h | PUT/h | SQS/h | $/h | $/month |")
        print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for servers in arguments.servers:
        for queue in (False, True):
            requests = requests_per_hour(servers, arguments.readers, queue)
            cost = price(requests)
            if arguments.json:
                print(json.dumps(dict(requests, servers=servers, readers=arguments.readers,
                                      queue=queue, dollars_per_hour=round(cost, 4))))
            else:
                print("| %s | %s | %s | %s | %s | %s | %.4f | %.2f |" % (
                    format(servers, ","), "yes" if queue else "no",
                    format(requests["LIST"], ","), format(requests["GET"], ","),
                    format(requests["PUT"], ","), format(requests["SQS"], ","), cost,
                    cost * 730))


if __name__ == "__main__":
    main()
