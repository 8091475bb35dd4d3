#!/usr/bin/env python3
"""Group the samples of a `perf script -F comm,tid,ip,sym` dump (recorded with
`--call-graph dwarf`) by thread and by what the call stack is doing, as in
docs/performance.md ("Profile under load"). Usage:

    perf script -i run.perf -F comm,tid,ip,sym > run.txt
    python3 bench/perf_groups.py run.txt

A sample goes to the first group whose marker appears anywhere on its stack;
a lone unknown frame is plugin code (JIT, no symbols).
"""
import collections, sys
samples=[];cur=[]
for l in open(sys.argv[1]):
    if not l.strip():
        if cur: samples.append(cur); cur=[]
        continue
    cur.append(l.rstrip())
if cur: samples.append(cur)
def fr(s): return [x.strip().split(None,1)[-1] for x in s[1:]]
rules=[('zstd','ZSTD_'),('sha256','sha2::'),('events (JSON build, log line)',('serde_json','EventLog::build','log_event','emit_event')),
('sandbox: instantiate',('instantiate','allocate_instance','new_store','start_session')),('sandbox: teardown',('drop_in_place<wasmtime::runtime::store','deallocate','reset_with_pagemap')),
('socket send (incl. loopback delivery)',('sys_sendto',)),('socket recv',('sys_recvfrom',)),('epoll',('epoll',)),('fsync/fdatasync',('fsync','fdatasync')),('pwrite (WAL, pack)',('pwrite',)),('pread',('pread',)),('softirq',('softirq',)),('futex (wakeups)',('futex',)),('other syscalls',('entry_SYSCALL',)),('page faults',('page_fault',)),
('SQLite CPU','sqlite3'),
('sandbox: call path (fibers, lift/lower, traps)',('fiber','call_async','lift','lower','catch_unwind_and_record_trap','func_loc','abi_async')),('malloc/free',('malloc','free','realloc')),('tokio scheduler/timers',('tokio',))]
tot=collections.Counter(); by=collections.defaultdict(collections.Counter)
for s in samples:
    comm=s[0].split()[0]; f=fr(s); j=' | '.join(f)
    cat='other'
    if f and f[0]=='[unknown]' and len(f)<=2: cat='sandbox: plugin code (JIT)'
    else:
      for name,keys in rules:
        if isinstance(keys,str): keys=(keys,)
        if any(k in j for k in keys): cat=name; break
    by[comm][cat]+=1; tot[comm]+=1
n=len(samples)
print(f"{n} samples")
for comm in sorted(by, key=lambda c:-tot[c]):
    print(f"{comm}: {100*tot[comm]/n:.1f}%")
    for k,v in by[comm].most_common():
        if 100*v/n >= 0.5: print(f"   {k:45} {100*v/n:5.1f}%")
