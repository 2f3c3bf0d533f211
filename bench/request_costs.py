"""The S3 requests a reader makes in an hour, and their price, with COORDINATION=s3.

    python bench/request_costs.py [--servers 10 1000 10000] [--readers 3] [--json]

Computed from the reader's schedule with the settings' defaults, for a bucket where nothing
new lands (what every poll costs, news or not); each object read adds one GET, and with
COORDINATION=s3 one PUT of its server's position. Prices: S3 Standard in us-east-1, per 1,000
requests: LIST and PUT $0.005, GET $0.0004.
"""

import argparse
import json
import math

PRICE = {"LIST": 0.005 / 1000, "PUT": 0.005 / 1000, "GET": 0.0004 / 1000}
HOUR = 3600.0


def requests_per_hour(servers, readers, poll=10.0, lease=30.0, late_interval=900.0,
                      sweep_interval=86400.0):
    """LIST, PUT and GET requests per hour of READERS readers sharing SERVERS servers with
    SERVER=*, nothing new landing."""
    pages = math.ceil(servers / 1000.0)
    turn = max(1.0, min(lease / 3.0, poll))
    listing = servers * (HOUR / poll  # each poll lists each server's window
                         + HOUR / late_interval  # the re-listing of the horizon
                         + HOUR / sweep_interval)  # the sweep of the whole prefix
    listing += readers * pages * HOUR / poll  # SERVER=*: the servers, at each poll
    coordination_lists = readers * (HOUR / turn  # the beats of the others
                                    + pages * HOUR / lease)  # the states, for free servers
    return {"LIST": round(listing + coordination_lists),
            "PUT": round(readers * HOUR / turn),  # the beats
            "GET": 0}


def price(requests):
    return sum(PRICE[kind] * number for kind, number in requests.items())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--servers", type=int, nargs="+", default=[10, 1000, 10000])
    parser.add_argument("--readers", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    arguments = parser.parse_args()
    if not arguments.json:
        print("| servers | readers | LIST/h | PUT/h (beats) | $/h | $/month |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for servers in arguments.servers:
        requests = requests_per_hour(servers, arguments.readers)
        cost = price(requests)
        if arguments.json:
            print(json.dumps(dict(requests, servers=servers, readers=arguments.readers,
                                  dollars_per_hour=round(cost, 4))))
        else:
            print("| %d | %d | %s | %s | %.4f | %.2f |" % (
                servers, arguments.readers, format(requests["LIST"], ","),
                format(requests["PUT"], ","), cost, cost * 730))


if __name__ == "__main__":
    main()
