-- Fragment (an expression): the sorted sparse histogram `h_slots` / `h_counts` laid out dense, element 1 = the 0 ms bucket (-32768), element i + 2 = bucket i, zeros between; linear in the histogram's length.
arrayFlatten(arrayMap(
    (position, count, previous) -> arrayConcat(arrayWithConstant(position - previous - 1, toInt64(0)), [count]),
    arrayMap(slot -> if(slot = -32768, 1, toInt32(slot) + 2), h_slots) AS h_positions,
    h_counts,
    arrayPopBack(arrayPushFront(h_positions, 0))))
