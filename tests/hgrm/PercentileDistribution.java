// HdrHistogram's own percentile distribution, as reference for shadowdiff's .hgrm output
// (tests/test_hgrm.py). Reads "value count" lines (microseconds) on standard input and prints
// outputPercentileDistribution with 5 ticks per half distance and a scaling ratio of 1000.
// Run with Java's single-file launcher: java -cp hdrhistogram.jar PercentileDistribution.java
import java.io.BufferedReader;
import java.io.InputStreamReader;
import org.HdrHistogram.Histogram;

public class PercentileDistribution {
    public static void main(String[] args) throws Exception {
        Histogram histogram = new Histogram(3);  // auto-resizing, 3 significant digits
        BufferedReader input = new BufferedReader(new InputStreamReader(System.in));
        String line;
        while ((line = input.readLine()) != null) {
            String[] fields = line.trim().split(" ");
            histogram.recordValueWithCount(Long.parseLong(fields[0]), Long.parseLong(fields[1]));
        }
        histogram.outputPercentileDistribution(System.out, 5, 1000.0);
    }
}
