#!/usr/bin/env python3
"""A QuickFIX (C++ engine, PyPI `quickfix`) FIX 4.4 acceptor that acknowledges orders: the
other end of the QuickFIX-to-QuickFIX baseline in docs/BENCHMARKS.md (../shared/notes/anchors.md
names it). Every NewOrderSingle gets one ExecutionReport New (150=0, 39=0); nothing matches.
Run against it: qf_client.py --cancel-ratio 0 --replace-ratio 0 --no-cancel-open.

    python qf_acceptor.py --port 9879 [--sender ORDO] [--client CLIENT1] [--seconds 600]

It prints "qf_acceptor ready on PORT" when it listens and stops after --seconds, on SIGTERM or
SIGINT.
"""

import argparse
import os
import signal
import sys
import tempfile
import threading
import time

import quickfix as fix
import quickfix44 as f44


def find_dictionary():
    for c in (os.path.join(sys.prefix, "share", "quickfix", "FIX44.xml"),
              os.path.join(sys.base_prefix, "share", "quickfix", "FIX44.xml")):
        if os.path.exists(c):
            return c
    return None


class Acceptor(fix.Application):
    def __init__(self):
        super().__init__()
        self.next_id = 0

    def onCreate(self, sid):
        pass

    def onLogon(self, sid):
        pass

    def onLogout(self, sid):
        pass

    def toAdmin(self, msg, sid):
        pass

    def fromAdmin(self, msg, sid):
        pass

    def toApp(self, msg, sid):
        pass

    def fromApp(self, msg, sid):
        try:
            self.answer(msg, sid)
        except Exception as e:  # a bug here must show, not silently stall the client
            print("qf_acceptor: %r" % e, file=sys.stderr, flush=True)
            raise

    def answer(self, msg, sid):
        t = fix.MsgType()
        msg.getHeader().getField(t)
        if t.getValue() != fix.MsgType_NewOrderSingle:
            return
        self.next_id += 1
        er = f44.ExecutionReport()
        er.setField(fix.OrderID("O%d" % self.next_id))
        er.setField(fix.ExecID("E%d" % self.next_id))
        er.setField(fix.ExecType(fix.ExecType_NEW))
        er.setField(fix.OrdStatus(fix.OrdStatus_NEW))
        er.setField(fix.Side(msg.getField(54)))
        er.setField(fix.LeavesQty(float(msg.getField(38))))
        er.setField(fix.CumQty(0))
        er.setField(fix.AvgPx(0))
        er.setField(fix.ClOrdID(msg.getField(11)))
        er.setField(fix.Symbol(msg.getField(55)))
        er.setField(fix.OrderQty(float(msg.getField(38))))
        if msg.isSetField(44):
            er.setField(fix.Price(float(msg.getField(44))))
        if msg.isSetField(1):
            er.setField(fix.Account(msg.getField(1)))
        fix.Session.sendToTarget(er, sid)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--sender", default="ORDO", help="our CompID (the client's TargetCompID)")
    ap.add_argument("--client", default="CLIENT1", help="the client's CompID")
    ap.add_argument("--seconds", type=float, default=600.0, help="stop after this long")
    a = ap.parse_args()
    sys.setswitchinterval(0.0001)  # as qf_client.py: Python's 5 ms default adds jitter
    dd = find_dictionary()
    if not dd:
        print("FIX44.xml not found", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="qf_acceptor-")
    cfg = os.path.join(tmp, "acceptor.cfg")
    with open(cfg, "w") as f:
        f.write("\n".join([
            "[DEFAULT]",
            "ConnectionType=acceptor",
            "SocketAcceptPort=%d" % a.port,
            "SocketNodelay=Y",
            "StartTime=00:00:00",
            "EndTime=00:00:00",
            "SenderCompID=%s" % a.sender,
            "ResetOnLogon=Y",
            "UseDataDictionary=Y",
            "DataDictionary=%s" % dd,
            "FileStorePath=%s" % os.path.join(tmp, "store"),
            "[SESSION]",
            "BeginString=FIX.4.4",
            "TargetCompID=%s" % a.client,
            "",
        ]))
    settings = fix.SessionSettings(cfg)
    app = Acceptor()
    acceptor = fix.SocketAcceptor(app, fix.FileStoreFactory(settings), settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        acceptor.start()
    except fix.RuntimeError as e:
        print("qf_acceptor: %s" % e, file=sys.stderr, flush=True)
        os._exit(2)  # QuickFIX's threads must not keep a failed process alive
    print("qf_acceptor ready on %d" % a.port, flush=True)
    deadline = time.time() + a.seconds
    while not stop.is_set() and time.time() < deadline:
        stop.wait(0.2)
    acceptor.stop(True)
    sys.stdout.flush()
    os._exit(0)  # nothing may linger: the benchmark script waits for this process


if __name__ == "__main__":
    sys.exit(main())
